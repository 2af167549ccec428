//! Splits spread.conf text into tokens, each tagged with the line it starts on.
//!
//! Words run until white space or one of `# { } = ;`; a word may start with a bracketed part
//! (`[ff02::1]:4803`) so IPv6 addresses with ports stay one token. `!` at the start of a word is a
//! token of its own (it negates a DebugFlags bit). Quotes (`"..."` or `'...'`) make one string.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenKind {
    Word(String),
    Quoted(String),
    OpenBrace,
    CloseBrace,
    Equals,
    Semicolon,
    Bang,
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub kind: TokenKind,
    pub line: usize,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Word(w) => write!(f, "\"{w}\""),
            TokenKind::Quoted(s) => write!(f, "quoted string \"{s}\""),
            TokenKind::OpenBrace => f.write_str("'{'"),
            TokenKind::CloseBrace => f.write_str("'}'"),
            TokenKind::Equals => f.write_str("'='"),
            TokenKind::Semicolon => f.write_str("';'"),
            TokenKind::Bang => f.write_str("'!'"),
            TokenKind::End => f.write_str("end of file"),
        }
    }
}

/// A lexing failure: the line and why.
pub(super) type LexError = (usize, String);

fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '#' | '{' | '}' | '=' | ';' | '[' | ']')
}

/// Tokenizes the whole text; the last token is always `End`, on the line of the token before it.
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, LexError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        let start_line = line;
        let single = match c {
            '{' => Some(TokenKind::OpenBrace),
            '}' => Some(TokenKind::CloseBrace),
            '=' => Some(TokenKind::Equals),
            ';' => Some(TokenKind::Semicolon),
            '!' => Some(TokenKind::Bang),
            _ => None,
        };
        if let Some(kind) = single {
            chars.next();
            tokens.push(Token { kind, line });
            continue;
        }
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '"' | '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            s.push(ch);
                        }
                        None => {
                            return Err((start_line, format!("unterminated quoted string (missing {c})")))
                        }
                    }
                }
                tokens.push(Token {
                    kind: TokenKind::Quoted(s),
                    line: start_line,
                });
            }
            ']' => return Err((line, "unexpected ']'".to_string())),
            _ => {
                let mut word = String::new();
                if c == '[' {
                    loop {
                        match chars.next() {
                            Some(']') => {
                                word.push(']');
                                break;
                            }
                            Some(ch) if ch != '\n' => word.push(ch),
                            _ => return Err((start_line, "unterminated '[' (missing ']')".to_string())),
                        }
                    }
                }
                while let Some(ch) = chars.next_if(|&ch| !ends_word(ch)) {
                    word.push(ch);
                }
                tokens.push(Token {
                    kind: TokenKind::Word(word),
                    line: start_line,
                });
            }
        }
    }
    // Errors about a missing token point at the last line with content.
    let end_line = tokens.last().map_or(line, |t| t.line);
    tokens.push(Token {
        kind: TokenKind::End,
        line: end_line,
    });
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(text).unwrap().into_iter().map(|t| t.kind).collect()
    }

    fn word(w: &str) -> TokenKind {
        TokenKind::Word(w.to_string())
    }

    #[test]
    fn splits_words_punctuation_and_comments() {
        assert_eq!(
            kinds("Window=5; # comment { }\nDebugFlags = { ALL !DEBUG }"),
            vec![
                word("Window"),
                TokenKind::Equals,
                word("5"),
                TokenKind::Semicolon,
                word("DebugFlags"),
                TokenKind::Equals,
                TokenKind::OpenBrace,
                word("ALL"),
                TokenKind::Bang,
                word("DEBUG"),
                TokenKind::CloseBrace,
                TokenKind::End,
            ]
        );
    }

    #[test]
    fn keeps_bracketed_ipv6_with_port_and_bang_inside_words() {
        assert_eq!(
            kinds("[ff02::1%eth0]:5000 a!b {x}"),
            vec![
                word("[ff02::1%eth0]:5000"),
                word("a!b"),
                TokenKind::OpenBrace,
                word("x"),
                TokenKind::CloseBrace,
                TokenKind::End
            ]
        );
    }

    #[test]
    fn quoted_strings_and_line_numbers() {
        let tokens = tokenize("a\n'x\ny' \"z\"\nb").unwrap();
        let summary: Vec<(TokenKind, usize)> = tokens.into_iter().map(|t| (t.kind, t.line)).collect();
        assert_eq!(
            summary,
            vec![
                (word("a"), 1),
                (TokenKind::Quoted("x\ny".to_string()), 2),
                (TokenKind::Quoted("z".to_string()), 3),
                (word("b"), 4),
                (TokenKind::End, 4),
            ]
        );
        let lines: Vec<usize> = tokenize("a\n\n# c\n\n")
            .unwrap()
            .into_iter()
            .map(|t| t.line)
            .collect();
        assert_eq!(lines, vec![1, 1]);
        assert_eq!(
            tokenize("\n\n").unwrap(),
            vec![Token {
                kind: TokenKind::End,
                line: 3
            }]
        );
    }

    #[test]
    fn reports_unterminated_constructs_with_their_line() {
        assert_eq!(tokenize("a\n\"abc\n").unwrap_err().0, 2);
        assert_eq!(tokenize("\n\n[ff02::1\n]").unwrap_err().0, 3);
        assert_eq!(tokenize("a ]").unwrap_err(), (1, "unexpected ']'".to_string()));
    }
}
