//! The daemon side of the connection set-up (spec section 2), without I/O: what to answer to
//! a connect request and to an auth choice.

use crate::wire::handshake::{
    encode_auth_list, parse_auth_choice, parse_connect_request, reject_byte, ConnectRefusal, ConnectRequest,
    AUTH_CHOICE_LEN,
};
use crate::wire::{REJECT_AUTH, REJECT_NOT_UNIQUE};

/// Authentication methods this daemon offers and insists on (config `AllowedAuthMethods`,
/// `RequiredAuthMethods`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthPolicy {
    pub allowed: Vec<String>,
    pub required: Vec<String>,
}

impl Default for AuthPolicy {
    fn default() -> AuthPolicy {
        AuthPolicy {
            allowed: vec![NULL_METHOD.to_string()],
            required: Vec::new(),
        }
    }
}

/// The method that always succeeds.
const NULL_METHOD: &str = "NULL";
/// Peer address against an allow file: known to clients, not provided by this daemon, so it
/// always fails when enabled.
const IP_METHOD: &str = "IP";

impl AuthPolicy {
    fn enabled(&self, method: &[u8]) -> bool {
        self.allowed
            .iter()
            .chain(&self.required)
            .any(|m| m.as_bytes() == method)
    }

    /// Every enabled method, each once, in configuration order.
    fn offered(&self) -> Vec<&str> {
        let mut list: Vec<&str> = Vec::new();
        for m in self.allowed.iter().chain(&self.required) {
            if !list.contains(&m.as_str()) {
                list.push(m);
            }
        }
        list
    }

    /// Runs the requested methods, then the required ones not requested: all must succeed.
    fn authorise(&self, requested: &[&[u8]]) -> bool {
        let required = self
            .required
            .iter()
            .map(|m| m.as_bytes())
            .filter(|m| !requested.contains(m));
        requested.iter().copied().chain(required).all(run_method)
    }
}

fn run_method(method: &[u8]) -> bool {
    if method == NULL_METHOD.as_bytes() {
        return true;
    }
    log::warn!(
        "authentication method {} is not available in this daemon; refusing",
        String::from_utf8_lossy(method)
    );
    false
}

/// What to do after a connect request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterRequest {
    /// The request was not all there: close without a reply.
    Close,
    /// Send these bytes (a reject code, or an empty auth list and a reject), then close.
    Refuse(Vec<u8>),
    /// Send the auth list (`offer`) and wait for the client's choice.
    OfferAuth { request: ConnectRequest, offer: Vec<u8> },
    /// The client predates authentication and is authorised: accept it.
    Accept(ConnectRequest),
}

/// Answers the connect request in `bytes` (exactly the request, as read when the connection
/// became readable). `name_in_use` tells whether a private name is taken on this daemon.
pub fn on_connect_request(
    bytes: &[u8],
    policy: &AuthPolicy,
    name_in_use: impl Fn(&[u8]) -> bool,
) -> AfterRequest {
    let request = match parse_connect_request(bytes) {
        Ok(request) => request,
        Err(ConnectRefusal::Incomplete) => return AfterRequest::Close,
        Err(ConnectRefusal::Reject(code)) => return AfterRequest::Refuse(vec![reject_byte(code)]),
    };
    if !request.private_name.is_empty() && name_in_use(&request.private_name) {
        return AfterRequest::Refuse(vec![reject_byte(REJECT_NOT_UNIQUE)]);
    }
    if !request.negotiates_auth() {
        // Old clients are authorised with IP if enabled, else NULL if enabled.
        let method = [IP_METHOD, NULL_METHOD]
            .into_iter()
            .find(|m| policy.enabled(m.as_bytes()));
        return match method {
            Some(m) if policy.authorise(&[m.as_bytes()]) => AfterRequest::Accept(request),
            _ => AfterRequest::Refuse(vec![reject_byte(REJECT_AUTH)]),
        };
    }
    let offer = encode_auth_list(&policy.offered());
    if offer == [0] {
        return AfterRequest::Refuse(vec![0, reject_byte(REJECT_AUTH)]);
    }
    AfterRequest::OfferAuth { request, offer }
}

/// Answers the auth choice: `Ok` to accept, else the reject byte to send before closing.
/// `bytes` is what one read returned; fewer than 90 bytes is a refusal.
pub fn on_auth_choice(bytes: &[u8], policy: &AuthPolicy) -> Result<(), u8> {
    let refuse = Err(reject_byte(REJECT_AUTH));
    let Ok(choice) = <&[u8; AUTH_CHOICE_LEN]>::try_from(bytes) else {
        return refuse;
    };
    let requested = parse_auth_choice(choice);
    if requested.is_empty() || !requested.iter().all(|m| policy.enabled(m)) {
        return refuse;
    }
    if policy.authorise(&requested) {
        Ok(())
    } else {
        refuse
    }
}

/// A daemon-invented private name: `r`, the random number below 9999, `-`, the connection's
/// socket number, cut to 9 characters.
pub fn invented_name(random: u32, socket: i32) -> Vec<u8> {
    let mut name = format!("r{}-{}", random % 9999, socket).into_bytes();
    name.truncate(9);
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::handshake::{encode_auth_choice, encode_connect_request};

    fn none_in_use(_: &[u8]) -> bool {
        false
    }

    #[test]
    fn offer_then_accept() {
        let policy = AuthPolicy::default();
        let req = encode_connect_request(b"alice", true, 0);
        let AfterRequest::OfferAuth { request, offer } = on_connect_request(&req, &policy, none_in_use)
        else {
            panic!("no offer");
        };
        assert_eq!(offer, b"\x05NULL ");
        assert_eq!(request.private_name, b"alice");
        assert!(request.group_membership);
        assert_eq!(on_auth_choice(&encode_auth_choice(&[b"NULL"]), &policy), Ok(()));
    }

    #[test]
    fn refusals() {
        let policy = AuthPolicy::default();
        let taken = |n: &[u8]| n == b"alice";
        let req = encode_connect_request(b"alice", false, 0);
        assert_eq!(
            on_connect_request(&req, &policy, taken),
            AfterRequest::Refuse(vec![0xfa])
        );
        assert_eq!(
            on_connect_request(&[5, 0, 1, 0, 11], &policy, none_in_use),
            AfterRequest::Refuse(vec![0xfb])
        );
        assert_eq!(
            on_connect_request(&[3, 0, 0, 0], &policy, none_in_use),
            AfterRequest::Refuse(vec![0xf9])
        );
        assert_eq!(
            on_connect_request(&[5, 0, 1], &policy, none_in_use),
            AfterRequest::Close
        );
        // An empty name is never "in use": the daemon invents one later.
        let anon = encode_connect_request(b"", false, 0);
        assert!(matches!(
            on_connect_request(&anon, &policy, |_| true),
            AfterRequest::OfferAuth { .. }
        ));
        // Short, empty, unknown or not enabled choices.
        assert_eq!(on_auth_choice(&[0; 89], &policy), Err(0xf7));
        assert_eq!(on_auth_choice(&[0; 90], &policy), Err(0xf7));
        assert_eq!(on_auth_choice(&encode_auth_choice(&[b"IP"]), &policy), Err(0xf7));
        assert_eq!(
            on_auth_choice(&encode_auth_choice(&[b"NULL", b"PWORD"]), &policy),
            Err(0xf7)
        );
    }

    #[test]
    fn policies() {
        let nothing = AuthPolicy {
            allowed: vec![],
            required: vec![],
        };
        let req = encode_connect_request(b"a", false, 0);
        assert_eq!(
            on_connect_request(&req, &nothing, none_in_use),
            AfterRequest::Refuse(vec![0, 0xf7])
        );
        // A required method that cannot succeed refuses even a NULL choice.
        let ip = AuthPolicy {
            allowed: vec!["NULL".into()],
            required: vec!["IP".into()],
        };
        let AfterRequest::OfferAuth { offer, .. } = on_connect_request(&req, &ip, none_in_use) else {
            panic!("no offer");
        };
        assert_eq!(offer, b"\x08NULL IP ");
        assert_eq!(on_auth_choice(&encode_auth_choice(&[b"NULL"]), &ip), Err(0xf7));
    }

    #[test]
    fn old_clients_skip_negotiation() {
        let policy = AuthPolicy::default();
        let req = [3, 14, 1, 2, b'a', b'b'];
        let AfterRequest::Accept(r) = on_connect_request(&req, &policy, none_in_use) else {
            panic!("not accepted");
        };
        assert_eq!(r.private_name, b"ab");
        let ip_only = AuthPolicy {
            allowed: vec!["IP".into(), "NULL".into()],
            required: vec![],
        };
        assert_eq!(
            on_connect_request(&req, &ip_only, none_in_use),
            AfterRequest::Refuse(vec![0xf7])
        );
    }

    #[test]
    fn invented_names() {
        assert_eq!(invented_name(1838, 13), b"r1838-13");
        assert_eq!(invented_name(9999, 5), b"r0-5");
        assert_eq!(invented_name(9998, 12345), b"r9998-123");
    }
}
