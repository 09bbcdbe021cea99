//! Glob patterns (`*`, `?`, `[...]`) built from expanded words.

/// One character of a pattern and whether it may act as a glob
/// metacharacter (false when it came from a quoted part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PatChar {
    c: char,
    active: bool,
}

/// A pathname pattern produced by expansion: the text of one field where
/// each character remembers whether it was quoted. Only unquoted `*`, `?`
/// and `[` act as metacharacters.
///
/// A pattern may contain `/`: use [`GlobPattern::components`] to split it and
/// [`GlobPattern::matches`] to test one path component, or
/// [`expand_glob_with`] to do both against a directory listing function.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobPattern {
    chars: Vec<PatChar>,
}

/// A compiled element of a single-component pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Char(char),
    Any,
    Star,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ClassItem {
    Char(char),
    Range(char, char),
    Named(NamedClass),
}

/// A `[:name:]` character class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamedClass {
    Alpha,
    Digit,
    Alnum,
    Upper,
    Lower,
    Space,
    Blank,
    Punct,
    Xdigit,
    Cntrl,
    Print,
    Graph,
}

impl NamedClass {
    fn contains(self, c: char) -> bool {
        match self {
            NamedClass::Alpha => c.is_alphabetic(),
            NamedClass::Digit => c.is_ascii_digit(),
            NamedClass::Alnum => c.is_alphanumeric(),
            NamedClass::Upper => c.is_uppercase(),
            NamedClass::Lower => c.is_lowercase(),
            NamedClass::Space => c.is_whitespace(),
            NamedClass::Blank => c == ' ' || c == '\t',
            NamedClass::Punct => c.is_ascii_punctuation(),
            NamedClass::Xdigit => c.is_ascii_hexdigit(),
            NamedClass::Cntrl => c.is_control(),
            NamedClass::Print => !c.is_control(),
            NamedClass::Graph => !c.is_control() && !c.is_whitespace(),
        }
    }
}

impl GlobPattern {
    /// A pattern where every character is literal (never matches more than
    /// the text itself).
    pub fn literal(text: &str) -> Self {
        GlobPattern {
            chars: text.chars().map(|c| PatChar { c, active: false }).collect(),
        }
    }

    /// A pattern from a pattern string where `*`, `?` and `[` are active and
    /// a backslash makes the next character literal (like `fnmatch`).
    pub fn parse(pattern: &str) -> Self {
        let mut chars = Vec::new();
        let mut it = pattern.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some(n) => chars.push(PatChar {
                        c: n,
                        active: false,
                    }),
                    None => chars.push(PatChar { c, active: false }),
                }
            } else {
                chars.push(PatChar { c, active: true });
            }
        }
        GlobPattern { chars }
    }

    /// Appends text; `active` says whether its metacharacters count.
    pub(crate) fn push_str(&mut self, text: &str, active: bool) {
        self.chars
            .extend(text.chars().map(|c| PatChar { c, active }));
    }

    /// The pattern's text as written (after quote removal): what the word
    /// becomes when nothing matches.
    pub fn text(&self) -> String {
        self.chars.iter().map(|p| p.c).collect()
    }

    /// True if the pattern contains an active `*`, `?` or a complete bracket
    /// expression, i.e. it needs matching against file names.
    pub fn has_magic(&self) -> bool {
        self.components()
            .iter()
            .any(|comp| comp.compile().iter().any(|t| !matches!(t, Tok::Char(_))))
    }

    /// True if the pattern starts with `/`.
    pub fn is_absolute(&self) -> bool {
        self.chars.first().is_some_and(|p| p.c == '/')
    }

    /// True if the pattern ends with `/` (only directories may match).
    pub fn has_trailing_slash(&self) -> bool {
        self.chars.len() > 1 && self.chars.last().is_some_and(|p| p.c == '/')
    }

    /// Splits the pattern at `/` into its non-empty path components, e.g.
    /// `/etc/*.conf` gives `etc` and `*.conf` (see [`Self::is_absolute`] and
    /// [`Self::has_trailing_slash`] for the slashes themselves).
    pub fn components(&self) -> Vec<GlobPattern> {
        self.chars
            .split(|p| p.c == '/')
            .filter(|part| !part.is_empty())
            .map(|part| GlobPattern {
                chars: part.to_vec(),
            })
            .collect()
    }

    /// Matches one path component `name` (no `/`) against this pattern
    /// (which should be a single component). `*` matches any string, `?`
    /// any character, `[abc]`, `[a-z]`, `[!x]`, `[^x]` and `[[:alpha:]]`-style
    /// classes one character. A name starting with `.` only matches if the
    /// pattern starts with a `.` too.
    pub fn matches(&self, name: &str) -> bool {
        let toks = self.compile();
        if name.starts_with('.') && !matches!(toks.first(), Some(Tok::Char('.'))) {
            return false;
        }
        let name: Vec<char> = name.chars().collect();
        match_toks(&toks, &name)
    }

    /// Compiles the characters into tokens.
    fn compile(&self) -> Vec<Tok> {
        let chars = &self.chars;
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let pc = chars[i];
            if !pc.active {
                toks.push(Tok::Char(pc.c));
                i += 1;
                continue;
            }
            match pc.c {
                '*' => {
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                    i += 1;
                }
                '?' => {
                    toks.push(Tok::Any);
                    i += 1;
                }
                '[' => match parse_bracket(chars, i + 1) {
                    Some((tok, next)) => {
                        toks.push(tok);
                        i = next;
                    }
                    None => {
                        toks.push(Tok::Char('['));
                        i += 1;
                    }
                },
                c => {
                    toks.push(Tok::Char(c));
                    i += 1;
                }
            }
        }
        toks
    }
}

/// Parses a bracket expression whose content starts at `start` (just after
/// `[`). Returns the token and the index after the closing `]`, or `None` if
/// the bracket is not closed (then `[` is literal).
fn parse_bracket(chars: &[PatChar], start: usize) -> Option<(Tok, usize)> {
    let mut j = start;
    let mut negated = false;
    if let Some(p) = chars.get(j) {
        if p.active && (p.c == '!' || p.c == '^') {
            negated = true;
            j += 1;
        }
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let p = *chars.get(j)?;
        if p.c == '/' {
            return None;
        }
        if p.active && p.c == ']' && !first {
            return Some((Tok::Class { negated, items }, j + 1));
        }
        first = false;
        if p.active && p.c == '[' && chars.get(j + 1).is_some_and(|n| n.c == ':') {
            if let Some((class, next)) = parse_named_class(chars, j + 2) {
                items.push(ClassItem::Named(class));
                j = next;
                continue;
            }
        }
        let dash = chars.get(j + 1);
        let end = chars.get(j + 2);
        if let (Some(d), Some(e)) = (dash, end) {
            if d.c == '-' && d.active && !(e.c == ']' && e.active) {
                items.push(ClassItem::Range(p.c, e.c));
                j += 3;
                continue;
            }
        }
        items.push(ClassItem::Char(p.c));
        j += 1;
    }
}

/// Parses `name:]` starting at `start`; returns the class test and the index
/// after `]`.
fn parse_named_class(chars: &[PatChar], start: usize) -> Option<(NamedClass, usize)> {
    let mut name = String::new();
    let mut j = start;
    loop {
        let p = chars.get(j)?;
        if p.c == ':' {
            break;
        }
        if !p.c.is_ascii_lowercase() {
            return None;
        }
        name.push(p.c);
        j += 1;
    }
    if chars.get(j + 1).map(|p| p.c) != Some(']') {
        return None;
    }
    let class = match name.as_str() {
        "alpha" => NamedClass::Alpha,
        "digit" => NamedClass::Digit,
        "alnum" => NamedClass::Alnum,
        "upper" => NamedClass::Upper,
        "lower" => NamedClass::Lower,
        "space" => NamedClass::Space,
        "blank" => NamedClass::Blank,
        "punct" => NamedClass::Punct,
        "xdigit" => NamedClass::Xdigit,
        "cntrl" => NamedClass::Cntrl,
        "print" => NamedClass::Print,
        "graph" => NamedClass::Graph,
        _ => return None,
    };
    Some((class, j + 2))
}

fn class_matches(negated: bool, items: &[ClassItem], c: char) -> bool {
    let hit = items.iter().any(|item| match *item {
        ClassItem::Char(x) => x == c,
        ClassItem::Range(lo, hi) => lo <= c && c <= hi,
        ClassItem::Named(class) => class.contains(c),
    });
    hit != negated
}

/// Wildcard matching with single-star backtracking (linear in practice).
fn match_toks(toks: &[Tok], name: &[char]) -> bool {
    let (mut t, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match toks.get(t) {
            Some(Tok::Star) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(Tok::Any) => true,
            Some(Tok::Char(c)) => *c == name[n],
            Some(Tok::Class { negated, items }) => class_matches(*negated, items, name[n]),
            None => false,
        };
        if step {
            t += 1;
            n += 1;
        } else if let Some((st, sn)) = star {
            t = st + 1;
            n = sn + 1;
            star = Some((st, sn + 1));
        } else {
            return false;
        }
    }
    toks[t.min(toks.len())..].iter().all(|t| *t == Tok::Star)
}

/// Expands `pattern` component by component using `list_dir`, which returns
/// the entry names of a directory (`"."` for the current one, `"/"` for the
/// root, otherwise the path built so far) or `None` if it is not a
/// directory. Literal components are checked against their parent's listing;
/// `.` and `..` are only produced by literal components. Results are sorted
/// by byte order; an empty result means "no match".
pub fn expand_glob_with<F>(pattern: &GlobPattern, list_dir: F) -> Vec<String>
where
    F: Fn(&str) -> Option<Vec<String>>,
{
    let mut paths: Vec<String> = vec![if pattern.is_absolute() {
        "/".to_string()
    } else {
        String::new()
    }];
    let join = |base: &str, name: &str| -> String {
        if base.is_empty() {
            name.to_string()
        } else if base.ends_with('/') {
            format!("{base}{name}")
        } else {
            format!("{base}/{name}")
        }
    };
    let dir_of = |base: &str| -> String {
        if base.is_empty() {
            ".".to_string()
        } else {
            base.to_string()
        }
    };
    for comp in pattern.components() {
        let mut next = Vec::new();
        let magic = comp.has_magic();
        let text = comp.text();
        for base in &paths {
            if !magic && (text == "." || text == "..") {
                if list_dir(&dir_of(base)).is_some() {
                    next.push(join(base, &text));
                }
                continue;
            }
            let Some(mut entries) = list_dir(&dir_of(base)) else {
                continue;
            };
            entries.sort();
            for entry in entries {
                if entry == "." || entry == ".." || entry.contains('/') {
                    continue;
                }
                let ok = if magic {
                    comp.matches(&entry)
                } else {
                    entry == text
                };
                if ok {
                    next.push(join(base, &entry));
                }
            }
        }
        paths = next;
        if paths.is_empty() {
            return paths;
        }
    }
    if pattern.has_trailing_slash() {
        paths = paths
            .into_iter()
            .filter(|p| list_dir(p).is_some())
            .map(|p| format!("{p}/"))
            .collect();
    }
    if pattern.components().is_empty() {
        // Only slashes: nothing to glob.
        return Vec::new();
    }
    paths.sort();
    paths.dedup();
    paths
}
