//! The `SP_*` functions of `sp_func.h` (plus the undeclared `SP_query_*`), as thin shells over
//! [`crate::client`]: check the C pointers, convert, call, write the results back.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::ptr;
use std::sync::{Arc, OnceLock};

use super::guard;
use super::types::{
    group_id, int16, mailbox, membership_info, scatter, service, sp_time, vs_set_info, MAX_GROUP_NAME,
};
use crate::client::membership::{self, MessageBytes, VsSet};
use crate::client::{self, AuthMethod, Error, Mailbox};
use crate::wire::name::{name_field, name_text, MAX_GROUP_NAME_CHARS};
use crate::wire::{
    error_text, Name, COULD_NOT_CONNECT, DROP_RECV, ILLEGAL_GROUP, ILLEGAL_MESSAGE,
    MAX_CLIENT_SCATTER_ELEMENTS, MESSAGE_TOO_LONG, SPREAD_MAJOR, SPREAD_MINOR, SPREAD_PATCH, SP_BUG,
};

fn result(r: Result<c_int, Error>) -> c_int {
    r.unwrap_or_else(Error::code)
}

/// The bytes of a NUL-terminated string, `None` for NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the result.
unsafe fn c_str<'a>(p: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: per this function's contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// At most the first `max` bytes of a NUL-terminated string (reading no further).
///
/// # Safety
/// `p` is non-NULL and readable up to its NUL or `max` bytes, whichever comes first.
unsafe fn c_str_prefix<'a>(p: *const c_char, max: usize) -> &'a [u8] {
    let mut len = 0;
    // SAFETY: reads stop at the NUL or at `max`, both within the readable range.
    while len < max && unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` bytes were just read.
    unsafe { std::slice::from_raw_parts(p as *const u8, len) }
}

/// A C buffer of `len` bytes as a slice; `None` when NULL but non-empty.
///
/// # Safety
/// If non-NULL, `p` is valid for `len` bytes for `'a` and not written meanwhile.
unsafe fn c_buf<'a>(p: *const c_char, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        Some(&[])
    } else if p.is_null() {
        None
    } else {
        // SAFETY: per this function's contract.
        Some(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    }
}

/// Mutable twin of [`c_buf`].
///
/// # Safety
/// If non-NULL, `p` is valid for writes of `len` items for `'a` and not otherwise accessed.
unsafe fn c_buf_mut<'a, T>(p: *mut T, len: usize) -> Option<&'a mut [T]> {
    if len == 0 {
        Some(&mut [])
    } else if p.is_null() {
        None
    } else {
        // SAFETY: per this function's contract.
        Some(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }
}

/// Capacity from a C `int` count (negative counts hold nothing).
fn capacity(count: c_int) -> usize {
    count.max(0) as usize
}

/// The elements of a scatter as byte slices, in `out`; their number, or `ILLEGAL_MESSAGE` for
/// a NULL scatter, more than 100 elements, or a NULL element with a length.
///
/// # Safety
/// `scat` is NULL or a valid scatter whose elements are valid for their lengths.
unsafe fn scatter_pieces(
    scat: *const scatter,
    out: &mut [&[u8]; MAX_CLIENT_SCATTER_ELEMENTS],
) -> Result<usize, Error> {
    let illegal = Error::from_code(ILLEGAL_MESSAGE);
    // SAFETY: per this function's contract.
    let scat = unsafe { scat.as_ref() }.ok_or(illegal)?;
    if scat.num_elements > MAX_CLIENT_SCATTER_ELEMENTS {
        return Err(illegal);
    }
    for (slot, e) in out.iter_mut().zip(&scat.elements[..scat.num_elements]) {
        // SAFETY: per this function's contract.
        *slot = unsafe { c_buf(e.buf, e.len) }.ok_or(illegal)?;
    }
    Ok(scat.num_elements)
}

/// Mutable twin of [`scatter_pieces`], for receiving.
///
/// # Safety
/// As [`scatter_pieces`], and the element buffers are writable and do not overlap.
unsafe fn scatter_pieces_mut(
    scat: *const scatter,
    out: &mut [&mut [u8]; MAX_CLIENT_SCATTER_ELEMENTS],
) -> Result<usize, Error> {
    let illegal = Error::from_code(ILLEGAL_MESSAGE);
    // SAFETY: per this function's contract.
    let scat = unsafe { scat.as_ref() }.ok_or(illegal)?;
    if scat.num_elements > MAX_CLIENT_SCATTER_ELEMENTS {
        return Err(illegal);
    }
    for (slot, e) in out.iter_mut().zip(&scat.elements[..scat.num_elements]) {
        // SAFETY: per this function's contract.
        *slot = unsafe { c_buf_mut(e.buf as *mut u8, e.len) }.ok_or(illegal)?;
    }
    Ok(scat.num_elements)
}

/// Reports the library version (5.0.1). Returns 1, or 0 if a pointer is NULL.
///
/// # Safety
/// Each pointer is NULL or points to a writable int.
#[no_mangle]
pub unsafe extern "C" fn SP_version(
    major_version: *mut c_int,
    minor_version: *mut c_int,
    patch_version: *mut c_int,
) -> c_int {
    guard(0, || {
        if major_version.is_null() || minor_version.is_null() || patch_version.is_null() {
            return 0;
        }
        // SAFETY: checked non-NULL; the caller passes writable ints.
        unsafe {
            *major_version = SPREAD_MAJOR as c_int;
            *minor_version = SPREAD_MINOR as c_int;
            *patch_version = SPREAD_PATCH as c_int;
        }
        1
    })
}

/// An application's auth function with its data pointer.
struct CAuth {
    function: unsafe extern "C" fn(c_int, *mut c_void) -> c_int,
    data: *mut c_void,
}

// SAFETY: the data pointer is only handed back to the application's own function, from the
// thread that connects, as with the original library; what it points to is the application's.
unsafe impl Send for CAuth {}
// SAFETY: as above; the library never dereferences `data`.
unsafe impl Sync for CAuth {}

impl CAuth {
    fn run(&self, fd: c_int) -> bool {
        // SAFETY: the application registered this function for exactly this call.
        unsafe { (self.function)(fd, self.data) != 0 }
    }
}

/// # Safety
/// `name` is NULL or a NUL-terminated string.
unsafe fn c_auth_method(
    name: *const c_char,
    function: Option<unsafe extern "C" fn(c_int, *mut c_void) -> c_int>,
    data: *mut c_void,
) -> Option<AuthMethod> {
    // SAFETY: per this function's contract.
    let name = unsafe { c_str(name) }?;
    let auth = CAuth {
        function: function?,
        data,
    };
    AuthMethod::new(name, Arc::new(move |fd| auth.run(fd)))
}

/// Makes `auth_name` the only authentication method of later connects; `auth_function(fd,
/// auth_data)` runs during the handshake and returns 1 on success. Returns 1, or 0 if the name
/// is 30 bytes or longer or the function is NULL.
///
/// # Safety
/// `auth_name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn SP_set_auth_method(
    auth_name: *const c_char,
    auth_function: Option<unsafe extern "C" fn(c_int, *mut c_void) -> c_int>,
    auth_data: *mut c_void,
) -> c_int {
    guard(0, || {
        // SAFETY: per this function's contract.
        match unsafe { c_auth_method(auth_name, auth_function, auth_data) } {
            Some(method) => client::set_auth_methods(vec![method]) as c_int,
            None => 0,
        }
    })
}

/// Makes the `num_methods` (0..3) given methods those of later connects (0 methods: every
/// connect fails with REJECT_AUTH). Returns 1, or 0 on a bad count, name or NULL function.
///
/// # Safety
/// The three arrays hold `num_methods` entries; names are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn SP_set_auth_methods(
    num_methods: c_int,
    auth_name: *mut *const c_char,
    auth_function: *mut Option<unsafe extern "C" fn(c_int, *mut c_void) -> c_int>,
    auth_data: *mut *mut c_void,
) -> c_int {
    guard(0, || {
        if !(0..=crate::wire::MAX_AUTH_METHODS as c_int).contains(&num_methods) {
            return 0;
        }
        let n = num_methods as usize;
        if n > 0 && (auth_name.is_null() || auth_function.is_null() || auth_data.is_null()) {
            return 0;
        }
        let mut methods = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: `i < n`, and the arrays hold `n` entries.
            let method =
                unsafe { c_auth_method(*auth_name.add(i), *auth_function.add(i), *auth_data.add(i)) };
            match method {
                Some(method) => methods.push(method),
                None => return 0,
            }
        }
        client::set_auth_methods(methods) as c_int
    })
}

/// # Safety
/// As [`SP_connect`].
unsafe fn connect(
    spread_name: *const c_char,
    private_name: *const c_char,
    priority: c_int,
    group_membership: c_int,
    mbox: *mut mailbox,
    private_group: *mut c_char,
    deadline: Option<std::time::Instant>,
) -> c_int {
    if mbox.is_null() || private_group.is_null() {
        return COULD_NOT_CONNECT;
    }
    // SAFETY: per SP_connect's contract.
    let (spread_name, private_name) =
        unsafe { (c_str(spread_name), c_str(private_name).unwrap_or_default()) };
    match client::connect(
        spread_name,
        private_name,
        priority,
        group_membership != 0,
        deadline,
    ) {
        Ok(connection) => {
            let name = name_text(&connection.private_group);
            // SAFETY: both pointers checked non-NULL; `private_group` has room for
            // MAX_GROUP_NAME bytes and the name is at most 31 plus its NUL.
            unsafe {
                *mbox = connection.mailbox.fd();
                ptr::copy_nonoverlapping(name.as_ptr(), private_group as *mut u8, name.len());
                *private_group.add(name.len()) = 0;
            }
            crate::wire::ACCEPT_SESSION
        }
        Err(e) => e.code(),
    }
}

/// Connects to the daemon `spread_name` (`"port"`, `"port@host"`, NULL = 4803) as
/// `private_name`; stores the mailbox and the private group name (32 bytes). Returns
/// ACCEPT_SESSION or an error code.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `mbox` points to a mailbox, `private_group` to 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn SP_connect(
    spread_name: *const c_char,
    private_name: *const c_char,
    priority: c_int,
    group_membership: c_int,
    mbox: *mut mailbox,
    private_group: *mut c_char,
) -> c_int {
    // SAFETY: same contract.
    guard(SP_BUG, || unsafe {
        connect(
            spread_name,
            private_name,
            priority,
            group_membership,
            mbox,
            private_group,
            None,
        )
    })
}

/// As `SP_connect`, giving up after `time_out` ({0,0}: never) with CONNECTION_CLOSED;
/// ILLEGAL_TIME for an invalid time.
///
/// # Safety
/// As `SP_connect`.
#[no_mangle]
pub unsafe extern "C" fn SP_connect_timeout(
    spread_name: *const c_char,
    private_name: *const c_char,
    priority: c_int,
    group_membership: c_int,
    mbox: *mut mailbox,
    private_group: *mut c_char,
    time_out: sp_time,
) -> c_int {
    guard(SP_BUG, || {
        let now = std::time::Instant::now();
        match client::deadline_after(time_out.sec, time_out.usec, now) {
            // SAFETY: same contract.
            Ok(deadline) => unsafe {
                connect(
                    spread_name,
                    private_name,
                    priority,
                    group_membership,
                    mbox,
                    private_group,
                    deadline,
                )
            },
            Err(e) => e.code(),
        }
    })
}

/// Tells the daemon the session ends and closes it. Returns 0, or ILLEGAL_SESSION.
#[no_mangle]
pub extern "C" fn SP_disconnect(mbox: mailbox) -> c_int {
    guard(SP_BUG, || result(Mailbox::from_fd(mbox).disconnect().map(|()| 0)))
}

/// Closes the session without telling the daemon; unknown mailboxes are ignored.
#[no_mangle]
pub extern "C" fn SP_kill(mbox: mailbox) {
    guard((), || Mailbox::from_fd(mbox).kill())
}

/// Joins `group` (1..31 characters from `$` to `~`). Returns 0 or an error code.
///
/// # Safety
/// `group` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn SP_join(mbox: mailbox, group: *const c_char) -> c_int {
    guard(SP_BUG, || {
        // SAFETY: per this function's contract.
        match unsafe { c_str(group) } {
            Some(group) => result(Mailbox::from_fd(mbox).join(group).map(|()| 0)),
            None => ILLEGAL_GROUP,
        }
    })
}

/// Leaves `group`. Returns 0 or an error code.
///
/// # Safety
/// `group` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn SP_leave(mbox: mailbox, group: *const c_char) -> c_int {
    guard(SP_BUG, || {
        // SAFETY: per this function's contract.
        match unsafe { c_str(group) } {
            Some(group) => result(Mailbox::from_fd(mbox).leave(group).map(|()| 0)),
            None => ILLEGAL_GROUP,
        }
    })
}

/// Where a multicast goes, as the C calls name it.
enum Destinations {
    /// One group name (NUL-terminated; cut to 31 characters).
    One(*const c_char),
    /// `count` 32-byte name fields, sent as they are.
    Many(*const [c_char; MAX_GROUP_NAME], c_int),
}

impl Destinations {
    /// The name fields to send; `one` holds the field of a single group.
    ///
    /// # Safety
    /// `One`: NULL or readable up to its NUL or 31 bytes; `Many`: holds `count` fields.
    unsafe fn fields<'a>(&self, one: &'a mut Name) -> Result<&'a [Name], Error> {
        let illegal = Error::from_code(ILLEGAL_GROUP);
        match *self {
            Destinations::One(group) if group.is_null() => Err(illegal),
            Destinations::One(group) => {
                // SAFETY: per this function's contract.
                *one = name_field(unsafe { c_str_prefix(group, MAX_GROUP_NAME_CHARS) });
                Ok(std::slice::from_ref(one))
            }
            Destinations::Many(_, count) if count < 0 => Err(illegal),
            // SAFETY: per this function's contract; a C name field has the layout of a `Name`.
            Destinations::Many(groups, count) => {
                unsafe { c_buf(groups as *const c_char, count as usize * MAX_GROUP_NAME) }
                    .map(|bytes| {
                        // SAFETY: `bytes` covers `count` whole fields of alignment 1.
                        unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const Name, count as usize) }
                    })
                    .ok_or(illegal)
            }
        }
    }
}

/// The common body of the four multicast calls.
///
/// # Safety
/// As the exported callers.
unsafe fn multicast(
    mbox: mailbox,
    service_type: service,
    destinations: Destinations,
    mess_type: int16,
    payload: Result<&[&[u8]], Error>,
) -> c_int {
    let mut one = [0u8; MAX_GROUP_NAME];
    // SAFETY: per the callers' contracts.
    let sent = unsafe { destinations.fields(&mut one) }.and_then(|groups| {
        Mailbox::from_fd(mbox).multigroup_multicast(service_type as u32, groups, mess_type, payload?)
    });
    result(sent.map(|n| n as c_int))
}

/// One contiguous payload; a negative length is MESSAGE_TOO_LONG, a NULL buffer with a
/// length ILLEGAL_MESSAGE.
///
/// # Safety
/// `mess` is NULL or valid for `mess_len` bytes.
unsafe fn one_piece<'a>(mess: *const c_char, mess_len: c_int) -> Result<[&'a [u8]; 1], Error> {
    if mess_len < 0 {
        return Err(Error::from_code(MESSAGE_TOO_LONG));
    }
    // SAFETY: per this function's contract.
    let piece = unsafe { c_buf(mess, mess_len as usize) }.ok_or(Error::from_code(ILLEGAL_MESSAGE))?;
    Ok([piece])
}

/// Sends `mess_len` bytes to `group` with `service_type` (needs a service bit) and
/// `mess_type`. Returns the number of bytes sent or an error code.
///
/// # Safety
/// `group` is NULL or NUL-terminated; `mess` is valid for `mess_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn SP_multicast(
    mbox: mailbox,
    service_type: service,
    group: *const c_char,
    mess_type: int16,
    mess_len: c_int,
    mess: *const c_char,
) -> c_int {
    guard(SP_BUG, || {
        // SAFETY: same contract.
        let payload = unsafe { one_piece(mess, mess_len) };
        // SAFETY: same contract.
        unsafe {
            multicast(
                mbox,
                service_type,
                Destinations::One(group),
                mess_type,
                payload.as_ref().map(|p| &p[..]).map_err(|e| *e),
            )
        }
    })
}

/// As `SP_multicast` with the payload gathered from a scatter.
///
/// # Safety
/// `group` is NULL or NUL-terminated; `scat_mess` is NULL or a valid scatter.
#[no_mangle]
pub unsafe extern "C" fn SP_scat_multicast(
    mbox: mailbox,
    service_type: service,
    group: *const c_char,
    mess_type: int16,
    scat_mess: *const scatter,
) -> c_int {
    guard(SP_BUG, || {
        let mut pieces = [&[][..]; MAX_CLIENT_SCATTER_ELEMENTS];
        // SAFETY: same contract.
        let payload = unsafe { scatter_pieces(scat_mess, &mut pieces) }.map(|n| &pieces[..n]);
        // SAFETY: same contract.
        unsafe { multicast(mbox, service_type, Destinations::One(group), mess_type, payload) }
    })
}

/// As `SP_multicast` to the `num_groups` 32-byte names in `groups` (sent as they are).
///
/// # Safety
/// `groups` holds `num_groups` names; `mess` is valid for `mess_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn SP_multigroup_multicast(
    mbox: mailbox,
    service_type: service,
    num_groups: c_int,
    groups: *const [c_char; MAX_GROUP_NAME],
    mess_type: int16,
    mess_len: c_int,
    mess: *const c_char,
) -> c_int {
    guard(SP_BUG, || {
        // SAFETY: same contract.
        let payload = unsafe { one_piece(mess, mess_len) };
        let destinations = Destinations::Many(groups, num_groups);
        // SAFETY: same contract.
        unsafe {
            multicast(
                mbox,
                service_type,
                destinations,
                mess_type,
                payload.as_ref().map(|p| &p[..]).map_err(|e| *e),
            )
        }
    })
}

/// As `SP_multigroup_multicast` with the payload gathered from a scatter.
///
/// # Safety
/// `groups` holds `num_groups` names; `scat_mess` is NULL or a valid scatter.
#[no_mangle]
pub unsafe extern "C" fn SP_multigroup_scat_multicast(
    mbox: mailbox,
    service_type: service,
    num_groups: c_int,
    groups: *const [c_char; MAX_GROUP_NAME],
    mess_type: int16,
    scat_mess: *const scatter,
) -> c_int {
    guard(SP_BUG, || {
        let mut pieces = [&[][..]; MAX_CLIENT_SCATTER_ELEMENTS];
        // SAFETY: same contract.
        let payload = unsafe { scatter_pieces(scat_mess, &mut pieces) }.map(|n| &pieces[..n]);
        let destinations = Destinations::Many(groups, num_groups);
        // SAFETY: same contract.
        unsafe { multicast(mbox, service_type, destinations, mess_type, payload) }
    })
}

/// The common body of the two receive calls.
///
/// # Safety
/// As [`SP_scat_receive`].
#[allow(clippy::too_many_arguments)]
unsafe fn receive(
    mbox: mailbox,
    service_type: *mut service,
    sender: *mut c_char,
    max_groups: c_int,
    num_groups: *mut c_int,
    groups: *mut [c_char; MAX_GROUP_NAME],
    mess_type: *mut int16,
    endian_mismatch: *mut c_int,
    body: Result<&mut [&mut [u8]], Error>,
) -> c_int {
    if service_type.is_null()
        || sender.is_null()
        || num_groups.is_null()
        || mess_type.is_null()
        || endian_mismatch.is_null()
    {
        return ILLEGAL_MESSAGE;
    }
    let body = match body {
        Ok(body) => body,
        Err(e) => return e.code(),
    };
    // SAFETY: the caller's array holds `max_groups` name fields; a C name field has the layout
    // of a `Name`.
    let Some(groups) = (unsafe { c_buf_mut(groups as *mut Name, capacity(max_groups)) }) else {
        return ILLEGAL_MESSAGE;
    };
    // SAFETY: checked non-NULL; the caller initialised it (0 or DROP_RECV).
    let drop_recv = unsafe { *service_type } as u32 & DROP_RECV != 0;
    match Mailbox::from_fd(mbox).receive(drop_recv, groups, body) {
        Ok(r) => {
            // SAFETY: all checked non-NULL; `sender` has room for MAX_GROUP_NAME bytes.
            unsafe {
                *service_type = r.service as service;
                ptr::copy_nonoverlapping(r.sender.as_ptr(), sender as *mut u8, MAX_GROUP_NAME);
                *num_groups = r.num_groups;
                *mess_type = r.mess_type;
                *endian_mismatch = r.endian_mismatch;
            }
            r.code()
        }
        Err(e) => e.code(),
    }
}

/// Receives one message (blocking): type into `*service_type` (set it to 0 or DROP_RECV
/// first), sender (32 bytes), up to `max_groups` names, the body into `mess`. Returns the body
/// length or an error code; BUFFER_TOO_SHORT / GROUPS_TOO_SHORT report the needed sizes as
/// negative `*endian_mismatch` / `*num_groups` and keep the message for a retry.
///
/// # Safety
/// Out-pointers are writable; `groups` holds `max_groups` names and `mess` `max_mess_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn SP_receive(
    mbox: mailbox,
    service_type: *mut service,
    sender: *mut c_char,
    max_groups: c_int,
    num_groups: *mut c_int,
    groups: *mut [c_char; MAX_GROUP_NAME],
    mess_type: *mut int16,
    endian_mismatch: *mut c_int,
    max_mess_len: c_int,
    mess: *mut c_char,
) -> c_int {
    guard(SP_BUG, || {
        // SAFETY: same contract.
        let buf = unsafe { c_buf_mut(mess as *mut u8, capacity(max_mess_len)) };
        let mut pieces = buf.map(|b| [b]).ok_or(Error::from_code(ILLEGAL_MESSAGE));
        let body = pieces.as_mut().map(|p| &mut p[..]).map_err(|e| *e);
        // SAFETY: same contract.
        unsafe {
            receive(
                mbox,
                service_type,
                sender,
                max_groups,
                num_groups,
                groups,
                mess_type,
                endian_mismatch,
                body,
            )
        }
    })
}

/// As `SP_receive`, filling the elements of `scat_mess` in order.
///
/// # Safety
/// As `SP_receive`; `scat_mess` is a valid scatter of writable, non-overlapping buffers.
#[no_mangle]
pub unsafe extern "C" fn SP_scat_receive(
    mbox: mailbox,
    service_type: *mut service,
    sender: *mut c_char,
    max_groups: c_int,
    num_groups: *mut c_int,
    groups: *mut [c_char; MAX_GROUP_NAME],
    mess_type: *mut int16,
    endian_mismatch: *mut c_int,
    scat_mess: *mut scatter,
) -> c_int {
    guard(SP_BUG, || {
        let mut pieces: [&mut [u8]; MAX_CLIENT_SCATTER_ELEMENTS] = std::array::from_fn(|_| &mut [][..]);
        // SAFETY: same contract.
        let body = unsafe { scatter_pieces_mut(scat_mess, &mut pieces) }.map(|n| &mut pieces[..n]);
        // SAFETY: same contract.
        unsafe {
            receive(
                mbox,
                service_type,
                sender,
                max_groups,
                num_groups,
                groups,
                mess_type,
                endian_mismatch,
                body,
            )
        }
    })
}

/// Bytes waiting on the mailbox's socket (not messages); 0 on a broken session;
/// ILLEGAL_SESSION for an unknown mailbox.
#[no_mangle]
pub extern "C" fn SP_poll(mbox: mailbox) -> c_int {
    guard(SP_BUG, || {
        result(
            Mailbox::from_fd(mbox)
                .poll()
                .map(|n| n.min(c_int::MAX as usize) as c_int),
        )
    })
}

/// 1 if the two group ids are equal, else 0.
#[no_mangle]
pub extern "C" fn SP_equal_group_ids(g1: group_id, g2: group_id) -> c_int {
    guard(0, || (g1 == g2) as c_int)
}

/// A membership body the caller handed over as a bare pointer.
struct BodyPointer(*const u8);

impl BodyPointer {
    /// # Safety
    /// `p` points to a membership message body as received, readable at every offset its
    /// contents lead the accessors to (as the C API requires).
    unsafe fn new(p: *const c_char) -> Option<BodyPointer> {
        (!p.is_null()).then_some(BodyPointer(p as *const u8))
    }
}

impl MessageBytes for BodyPointer {
    fn read_at(&self, at: usize, out: &mut [u8]) -> bool {
        // SAFETY: guaranteed by the contract of `BodyPointer::new`.
        unsafe { ptr::copy_nonoverlapping(self.0.add(at), out.as_mut_ptr(), out.len()) };
        true
    }
}

/// # Safety
/// `out` is NULL or writable.
unsafe fn memb_info<B: MessageBytes + ?Sized>(
    body: Option<&B>,
    service_type: service,
    out: *mut membership_info,
) -> c_int {
    // SAFETY: per this function's contract.
    let (Some(body), Some(out)) = (body, unsafe { out.as_mut() }) else {
        return ILLEGAL_MESSAGE;
    };
    match membership::memb_info(body, service_type as u32) {
        Ok(info) => {
            out.gid = group_id {
                id: [info.gid.proc_id, info.gid.time, info.gid.index],
            };
            if let Some(name) = info.changed_member {
                out.changed_member = name.map(|b| b as c_char);
            }
            out.num_vs_sets = info.num_vs_sets;
            out.my_vs_set = c_vs_set(info.my_vs_set);
            1
        }
        Err(e) => e.code(),
    }
}

fn c_vs_set(set: VsSet) -> vs_set_info {
    vs_set_info {
        num_members: set.num_members,
        members_offset: set.members_offset,
    }
}

/// # Safety
/// `vs_sets` is NULL or holds `capacity` entries; `my_index` is NULL or writable.
unsafe fn vs_sets_info<B: MessageBytes + ?Sized>(
    body: Option<&B>,
    vs_sets: *mut vs_set_info,
    capacity: usize,
    my_index: *mut c_uint,
) -> c_int {
    let Some(body) = body else {
        return ILLEGAL_MESSAGE;
    };
    match membership::vs_sets_info(body, capacity) {
        Ok((sets, mine)) => {
            // SAFETY: per this function's contract (`sets.len() <= capacity`).
            let Some(out) = (unsafe { c_buf_mut(vs_sets, sets.len()) }) else {
                return ILLEGAL_MESSAGE;
            };
            for (slot, set) in out.iter_mut().zip(&sets) {
                *slot = c_vs_set(*set);
            }
            if let (Some(index), false) = (mine, my_index.is_null()) {
                // SAFETY: checked non-NULL.
                unsafe { *my_index = index };
            }
            sets.len() as c_int
        }
        Err(e) => e.code(),
    }
}

/// # Safety
/// `vs_set` is NULL or valid; `names` is NULL or holds `capacity` name fields.
unsafe fn vs_set_members<B: MessageBytes + ?Sized>(
    body: Option<&B>,
    vs_set: *const vs_set_info,
    names: *mut [c_char; MAX_GROUP_NAME],
    capacity: usize,
) -> c_int {
    // SAFETY: per this function's contract.
    let (Some(body), Some(set)) = (body, unsafe { vs_set.as_ref() }) else {
        return ILLEGAL_MESSAGE;
    };
    // SAFETY: per this function's contract; a C name field has the layout of a `Name`.
    let Some(out) = (unsafe { c_buf_mut(names as *mut Name, capacity) }) else {
        return ILLEGAL_MESSAGE;
    };
    let set = VsSet {
        num_members: set.num_members,
        members_offset: set.members_offset,
    };
    result(membership::vs_set_members(body, set, out).map(|n| n as c_int))
}

/// Reads a membership message's group id, changed member and own vs set into `memb_info`.
/// Returns 1, or ILLEGAL_MESSAGE if `service_type` is not a membership type.
///
/// # Safety
/// `memb_mess` is the body of a received membership message; `memb_info` is writable.
#[no_mangle]
pub unsafe extern "C" fn SP_get_memb_info(
    memb_mess: *const c_char,
    service_type: service,
    memb_info: *mut membership_info,
) -> c_int {
    guard(SP_BUG, || {
        // SAFETY: same contract.
        unsafe { self::memb_info(BodyPointer::new(memb_mess).as_ref(), service_type, memb_info) }
    })
}

/// Describes the vs sets of a membership body in `vs_sets` (room for `num_vs_sets`) and
/// stores the receiver's set index. Returns the number of sets or BUFFER_TOO_SHORT.
///
/// # Safety
/// `memb_mess` is a received membership body; `vs_sets` holds `num_vs_sets` entries.
#[no_mangle]
pub unsafe extern "C" fn SP_get_vs_sets_info(
    memb_mess: *const c_char,
    vs_sets: *mut vs_set_info,
    num_vs_sets: c_int,
    my_vs_set_index: *mut c_uint,
) -> c_int {
    guard(SP_BUG, || {
        // SAFETY: same contract.
        unsafe {
            vs_sets_info(
                BodyPointer::new(memb_mess).as_ref(),
                vs_sets,
                capacity(num_vs_sets),
                my_vs_set_index,
            )
        }
    })
}

/// Copies the names of one vs set into `member_names` (room for `member_names_count`).
/// Returns their number or BUFFER_TOO_SHORT.
///
/// # Safety
/// `memb_mess` is a received membership body; `vs_set` came from it; `member_names` holds
/// `member_names_count` names.
#[no_mangle]
pub unsafe extern "C" fn SP_get_vs_set_members(
    memb_mess: *const c_char,
    vs_set: *const vs_set_info,
    member_names: *mut [c_char; MAX_GROUP_NAME],
    member_names_count: c_int,
) -> c_int {
    guard(SP_BUG, || {
        // SAFETY: same contract.
        unsafe {
            vs_set_members(
                BodyPointer::new(memb_mess).as_ref(),
                vs_set,
                member_names,
                capacity(member_names_count),
            )
        }
    })
}

/// The pieces of a scatter holding a membership body, or `None` for an invalid scatter.
///
/// # Safety
/// As [`scatter_pieces`].
unsafe fn scatter_body<'a>(
    scat: *const scatter,
    pieces: &'a mut [&'a [u8]; MAX_CLIENT_SCATTER_ELEMENTS],
) -> Option<&'a [&'a [u8]]> {
    // SAFETY: per this function's contract.
    let count = unsafe { scatter_pieces(scat, pieces) }.ok()?;
    Some(&pieces[..count])
}

/// `SP_get_memb_info` for a body received into a scatter.
///
/// # Safety
/// `memb_mess_scat` is a valid scatter holding the body; `memb_info` is writable.
#[no_mangle]
pub unsafe extern "C" fn SP_scat_get_memb_info(
    memb_mess_scat: *const scatter,
    service_type: service,
    memb_info: *mut membership_info,
) -> c_int {
    guard(SP_BUG, || {
        let mut pieces = [&[][..]; MAX_CLIENT_SCATTER_ELEMENTS];
        // SAFETY: same contract.
        unsafe { self::memb_info(scatter_body(memb_mess_scat, &mut pieces), service_type, memb_info) }
    })
}

/// `SP_get_vs_sets_info` for a body received into a scatter.
///
/// # Safety
/// `memb_mess_scat` is a valid scatter holding the body; `vs_sets` holds `num_vs_sets` entries.
#[no_mangle]
pub unsafe extern "C" fn SP_scat_get_vs_sets_info(
    memb_mess_scat: *const scatter,
    vs_sets: *mut vs_set_info,
    num_vs_sets: c_int,
    my_vs_set_index: *mut c_uint,
) -> c_int {
    guard(SP_BUG, || {
        let mut pieces = [&[][..]; MAX_CLIENT_SCATTER_ELEMENTS];
        // SAFETY: same contract.
        unsafe {
            vs_sets_info(
                scatter_body(memb_mess_scat, &mut pieces),
                vs_sets,
                capacity(num_vs_sets),
                my_vs_set_index,
            )
        }
    })
}

/// `SP_get_vs_set_members` for a body received into a scatter.
///
/// # Safety
/// As `SP_get_vs_set_members`, with the body in a valid scatter.
#[no_mangle]
pub unsafe extern "C" fn SP_scat_get_vs_set_members(
    memb_mess_scat: *const scatter,
    vs_set: *const vs_set_info,
    member_names: *mut [c_char; MAX_GROUP_NAME],
    member_names_count: c_int,
) -> c_int {
    guard(SP_BUG, || {
        let mut pieces = [&[][..]; MAX_CLIENT_SCATTER_ELEMENTS];
        // SAFETY: same contract.
        unsafe {
            vs_set_members(
                scatter_body(memb_mess_scat, &mut pieces),
                vs_set,
                member_names,
                capacity(member_names_count),
            )
        }
    })
}

/// The texts of result codes 0 (and every unknown code), -1 .. -20, NUL-terminated.
fn error_texts() -> &'static [CString; 21] {
    static TEXTS: OnceLock<[CString; 21]> = OnceLock::new();
    TEXTS.get_or_init(|| {
        std::array::from_fn(|i| CString::new(error_text(-(i as i32))).expect("texts have no NUL"))
    })
}

/// The text of a result code (a static string).
#[no_mangle]
pub extern "C" fn SP_strerror(error: c_int) -> *const c_char {
    guard(c"Unrecognized error.".as_ptr(), || {
        let index = if (-20..=-1).contains(&error) {
            -error as usize
        } else {
            0
        };
        error_texts()[index].as_ptr()
    })
}

/// Prints `SP_error: (<code>) <text>` and a newline to standard output.
#[no_mangle]
pub extern "C" fn SP_error(error: c_int) {
    guard((), || {
        // SAFETY: the format takes an int and a NUL-terminated string, which are passed.
        // Through C's stdout so the line stays in order with the application's own output.
        unsafe { libc::printf(c"SP_error: (%d) %s\n".as_ptr(), error, SP_strerror(error)) };
    })
}

/// Never implemented by Spread; returns -1.
#[no_mangle]
pub extern "C" fn SP_query_groups(_mbox: mailbox, _max_groups: c_int, _groups: *mut *mut c_char) -> c_int {
    -1
}

/// Never implemented by Spread; returns -1.
#[no_mangle]
pub extern "C" fn SP_query_members(
    _mbox: mailbox,
    _group: *mut c_char,
    _max_members: c_int,
    _members: *mut *mut c_char,
) -> c_int {
    -1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake_session;
    use crate::wire::header::hint_for_mess_type;
    use crate::wire::membership::{encode_regular_body, GroupId};
    use crate::wire::{Header, AGREED_MESS, BUFFER_TOO_SHORT, GROUPS_TOO_SHORT, ILLEGAL_SERVICE, NAME_LEN};
    use std::io::{Read, Write};

    fn c_text(p: *const c_char) -> &'static str {
        // SAFETY: the library returns static NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn texts_version_ids() {
        assert_eq!(c_text(SP_strerror(-8)), "Connection closed by Spread.");
        assert_eq!(c_text(SP_strerror(-20)), "Illegal time.");
        assert_eq!(c_text(SP_strerror(1)), "Unrecognized error.");
        assert_eq!(c_text(SP_strerror(-21)), "Unrecognized error.");
        let (mut a, mut b, mut c) = (0, 0, 0);
        // SAFETY: valid pointers / NULL as the function allows.
        unsafe {
            assert_eq!(SP_version(&mut a, &mut b, &mut c), 1);
            assert_eq!(SP_version(ptr::null_mut(), &mut b, &mut c), 0);
        }
        assert_eq!((a, b, c), (5, 0, 1));
        let g = group_id { id: [1, 2, 3] };
        assert_eq!(SP_equal_group_ids(g, g), 1);
        assert_eq!(SP_equal_group_ids(g, group_id { id: [1, 2, 4] }), 0);
        assert_eq!(SP_query_groups(3, 0, ptr::null_mut()), -1);
    }

    #[test]
    fn membership_accessors_on_pointers_and_scatters() {
        let sets: [&[Name]; 2] = [
            &[name_field(b"#cb#db"), name_field(b"#cb2#db")],
            &[name_field(b"#ca#da")],
        ];
        let body = encode_regular_body(
            GroupId {
                proc_id: 7,
                time: 8,
                index: 9,
            },
            &sets,
            1,
        );
        let mut info = membership_info {
            gid: group_id::default(),
            changed_member: [1; MAX_GROUP_NAME],
            num_vs_sets: 0,
            my_vs_set: vs_set_info::default(),
        };
        let mut scat = scatter {
            num_elements: 2,
            elements: [super::super::types::scat_element {
                buf: ptr::null_mut(),
                len: 0,
            }; MAX_CLIENT_SCATTER_ELEMENTS],
        };
        let mut copy = body.clone();
        let (first, second) = copy.split_at_mut(30);
        scat.elements[0] = super::super::types::scat_element {
            buf: first.as_mut_ptr() as *mut c_char,
            len: first.len(),
        };
        scat.elements[1] = super::super::types::scat_element {
            buf: second.as_mut_ptr() as *mut c_char,
            len: second.len(),
        };
        let p = body.as_ptr() as *const c_char;
        let mut vs = [vs_set_info::default(); 3];
        let mut mine = 99;
        let mut names = [[0 as c_char; MAX_GROUP_NAME]; 2];
        // SAFETY: `body`, `scat` and the out-parameters are valid for these calls.
        unsafe {
            assert_eq!(SP_get_memb_info(p, 0x1800, &mut info), 1);
            assert_eq!((info.gid.id, info.num_vs_sets), ([7, 8, 9], 2));
            assert_eq!(info.changed_member, [0; MAX_GROUP_NAME]);
            assert_eq!(
                (info.my_vs_set.num_members, info.my_vs_set.members_offset),
                (1, 92)
            );
            assert_eq!(
                SP_get_memb_info(p, AGREED_MESS as service, &mut info),
                ILLEGAL_MESSAGE
            );
            assert_eq!(SP_get_memb_info(ptr::null(), 0x1800, &mut info), ILLEGAL_MESSAGE);
            assert_eq!(SP_scat_get_vs_sets_info(&scat, vs.as_mut_ptr(), 3, &mut mine), 2);
            assert_eq!(
                (
                    vs[0].num_members,
                    vs[0].members_offset,
                    vs[1].members_offset,
                    mine
                ),
                (2, 24, 92, 1)
            );
            assert_eq!(
                SP_get_vs_sets_info(p, vs.as_mut_ptr(), 1, &mut mine),
                BUFFER_TOO_SHORT
            );
            assert_eq!(
                SP_scat_get_vs_set_members(&scat, &vs[0], names.as_mut_ptr(), 2),
                2
            );
            assert_eq!(names[1].map(|c| c as u8), name_field(b"#cb2#db"));
            assert_eq!(
                SP_get_vs_set_members(p, &vs[0], names.as_mut_ptr(), 1),
                BUFFER_TOO_SHORT
            );
            scat.num_elements = 101;
            assert_eq!(SP_scat_get_memb_info(&scat, 0x1800, &mut info), ILLEGAL_MESSAGE);
        }
    }

    #[test]
    fn receive_and_send_shells() {
        let (fd, mut daemon) = fake_session(b"#me#d");
        let h = Header {
            msg_type: AGREED_MESS,
            sender: name_field(b"#you#d"),
            num_groups: 2,
            hint: hint_for_mess_type(9),
            data_len: 3,
        };
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(&name_field(b"g1"));
        bytes.extend_from_slice(&name_field(b"g2"));
        bytes.extend_from_slice(b"abc");
        daemon.write_all(&bytes).unwrap();
        let (mut st, mut ng, mut mt, mut em) = (0 as service, 0, 0 as int16, 0);
        let mut sender = [0 as c_char; MAX_GROUP_NAME];
        let mut groups = [[0 as c_char; MAX_GROUP_NAME]; 2];
        let mut mess = [0 as c_char; 8];
        // SAFETY: every pointer is valid for the sizes passed.
        unsafe {
            let r = SP_receive(
                fd,
                &mut st,
                sender.as_mut_ptr(),
                1,
                &mut ng,
                groups.as_mut_ptr(),
                &mut mt,
                &mut em,
                8,
                mess.as_mut_ptr(),
            );
            assert_eq!(
                (r, st, ng, mt, em),
                (GROUPS_TOO_SHORT, AGREED_MESS as service, -2, 9, 0)
            );
            assert_eq!(
                sender[..7].iter().map(|&c| c as u8).collect::<Vec<_>>(),
                b"#you#d\0"
            );
            let r = SP_receive(
                fd,
                &mut st,
                ptr::null_mut(),
                2,
                &mut ng,
                groups.as_mut_ptr(),
                &mut mt,
                &mut em,
                8,
                mess.as_mut_ptr(),
            );
            assert_eq!(r, ILLEGAL_MESSAGE);
            let r = SP_receive(
                fd,
                &mut st,
                sender.as_mut_ptr(),
                2,
                &mut ng,
                groups.as_mut_ptr(),
                &mut mt,
                &mut em,
                8,
                ptr::null_mut(),
            );
            assert_eq!(r, ILLEGAL_MESSAGE);
            let r = SP_receive(
                fd,
                &mut st,
                sender.as_mut_ptr(),
                2,
                &mut ng,
                groups.as_mut_ptr(),
                &mut mt,
                &mut em,
                8,
                mess.as_mut_ptr(),
            );
            assert_eq!((r, ng, mess[2] as u8), (3, 2, b'c'));

            assert_eq!(
                SP_multicast(fd, AGREED_MESS as service, ptr::null(), 0, 1, c"x".as_ptr()),
                ILLEGAL_GROUP
            );
            assert_eq!(
                SP_multicast(fd, AGREED_MESS as service, c"g".as_ptr(), 0, -1, c"x".as_ptr()),
                MESSAGE_TOO_LONG
            );
            assert_eq!(
                SP_multicast(fd, AGREED_MESS as service, c"g".as_ptr(), 0, 1, ptr::null()),
                ILLEGAL_MESSAGE
            );
            assert_eq!(
                SP_multicast(fd, 0, c"g".as_ptr(), 0, 1, c"x".as_ptr()),
                ILLEGAL_SERVICE
            );
            assert_eq!(
                SP_multigroup_multicast(fd, AGREED_MESS as service, -1, ptr::null(), 0, 0, ptr::null()),
                ILLEGAL_GROUP
            );
            let long = c"a-group-name-that-is-much-longer-than-31";
            assert_eq!(
                SP_multicast(fd, AGREED_MESS as service, long.as_ptr(), 0, 2, c"hi".as_ptr()),
                2
            );
            assert_eq!(SP_join(fd, ptr::null()), ILLEGAL_GROUP);
            assert_eq!(SP_disconnect(fd), 0);
        }
        let mut sent = vec![0u8; 48 + NAME_LEN + 2];
        daemon.read_exact(&mut sent).unwrap();
        assert_eq!(
            &sent[48..80],
            &name_field(b"a-group-name-that-is-much-longer-than-31")
        );
        assert_eq!(&sent[80..], b"hi");
    }
}
