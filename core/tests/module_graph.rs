//! No import circles inside meshgate-core. At every level of the module tree, the modules
//! under one parent (the stages under the crate root, the files of one stage, the parts of
//! `snapshot`) must not name each other in a circle: `a` uses `b` and `b` uses `a`, directly
//! or around a longer loop. A module naming its parent or its own children is no circle, and
//! a file's child modules count as part of it (`token/jwks/x509.rs` is `jwks` in `token`).
//!
//! Read from the source, without a Rust parser: every path that starts at `crate`, `super`
//! or `self` (in `use` lines and in code), with comments and test code (`#[cfg(test)]` items
//! and modules) left out, since a test may use any module. A path through a re-export
//! (`crate::jwks`, `crate::token::UnverifiedToken`) is followed to the module it names.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a test: its helpers outside #[test] fns fail it loudly too"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type ModPath = Vec<String>;

/// Siblings naming siblings, per parent module.
type Graph = BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn core_has_no_import_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&src, &src, &mut files);
    let graph = graph(&files);
    // The reader sees the crate at all: edges that must be there.
    for (parent, from, to) in [
        (vec![], "decision", "token"),
        (vec![], "policy", "identity"),
        (vec!["token"], "jws", "jwks"),
        (vec!["decision"], "authorize", "evaluate"),
        (vec!["snapshot"], "decode", "wire"),
    ] {
        let parent: ModPath = parent.into_iter().map(String::from).collect();
        assert!(
            graph
                .get(&parent)
                .and_then(|siblings| siblings.get(from))
                .is_some_and(|to_set| to_set.contains(to)),
            "no edge {from} -> {to} under {parent:?}: the reader is broken"
        );
    }
    let found = circles(&graph);
    assert!(
        found.is_empty(),
        "import circles (parent: modules):\n{}",
        found.join("\n")
    );
}

#[test]
fn circles_through_re_exports_are_found_and_tests_and_comments_ignored() {
    let file = |path: &str, code: &str| (module_of(Path::new(path)), String::from(code));
    let files = [
        file(
            "lib.rs",
            "pub mod a;\npub mod b;\npub mod c;\npub use a::Thing as Alias;\npub use b::inner;\n",
        ),
        // a -> b and a -> c, both in `use` lines.
        file(
            "a.rs",
            "use crate::{b::{self, X}, c::Z};\npub struct Thing;\n",
        ),
        // b -> a through the crate root's re-export, in code; `inner` is b's own child.
        file(
            "b/mod.rs",
            "pub mod inner;\nfn f() -> u8 {\n    crate::Alias::new()\n}\n",
        ),
        // c -> a only in a comment and in tests: no circle.
        file(
            "c.rs",
            "//! Like [`crate::a::Thing`].\npub struct Z; // crate::a\n\
             #[cfg(test)]\nmod tests {\n    use crate::a::Thing;\n}\n\
             #[cfg(test)]\nmod more_tests;\n",
        ),
        file("c/more_tests.rs", "use crate::a::Thing;\n"),
        // A child naming its parent (through a re-export of the parent's own child): none.
        file(
            "b/inner.rs",
            "use super::super::inner::Y;\nuse crate::b::f;\n",
        ),
    ];
    assert_eq!(circles(&graph(&files)), [": a, b"]);
}

/// Every `.rs` file under `dir`, with its module path, sorted.
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(ModPath, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let code = std::fs::read_to_string(&path).unwrap();
            out.push((module_of(path.strip_prefix(root).unwrap()), code));
        }
    }
}

/// `token/jws.rs` is `token::jws`, `token/mod.rs` is `token`, `lib.rs` the crate root.
fn module_of(relative: &Path) -> ModPath {
    let mut module: ModPath = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if module
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        module.pop();
    }
    module
}

fn graph(files: &[(ModPath, String)]) -> Graph {
    let mut test_only: Vec<ModPath> = Vec::new();
    let mut code: BTreeMap<ModPath, String> = BTreeMap::new();
    for (module, text) in files {
        let (kept, test_children) = without_tests(text);
        test_only.extend(test_children.into_iter().map(|child| {
            let mut path = module.clone();
            path.push(child);
            path
        }));
        code.insert(module.clone(), kept);
    }
    code.retain(|module, _| !test_only.iter().any(|t| module.starts_with(t)));
    let crate_ = Crate {
        modules: code.keys().cloned().collect(),
        uses: code
            .iter()
            .map(|(module, text)| (module.clone(), imports(module, text)))
            .collect(),
    };
    let mut graph = Graph::new();
    for (module, text) in &code {
        for path in rooted_paths(module, text) {
            let target = crate_.resolve(path);
            let shared = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if let (Some(from), Some(to)) = (module.get(shared), target.get(shared)) {
                graph
                    .entry(module.iter().take(shared).cloned().collect())
                    .or_default()
                    .entry(from.clone())
                    .or_default()
                    .insert(to.clone());
            }
        }
    }
    graph
}

struct Crate {
    modules: BTreeSet<ModPath>,
    /// Per module, the names its `use` items bind, with the paths they stand for.
    uses: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
}

impl Crate {
    /// The module a path lands in, following re-exports (`crate::jwks` -> `token::jwks`).
    fn resolve(&self, mut path: ModPath) -> ModPath {
        for _ in 0..8 {
            let depth = (0..=path.len())
                .rev()
                .find(|&k| self.modules.contains(&path[..k]))
                .unwrap_or(0);
            let rest = path.split_off(depth);
            match rest
                .first()
                .and_then(|name| self.uses.get(&path)?.get(name))
            {
                Some(target) => path = target.iter().chain(&rest[1..]).cloned().collect(),
                None => return path,
            }
        }
        path
    }
}

/// The code of a file without its comments and test code, and the names of its
/// `#[cfg(test)] mod name;` children.
fn without_tests(text: &str) -> (String, Vec<String>) {
    let mut kept = String::new();
    let mut test_children = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.split("//").next().unwrap_or_default();
        if line.trim() != "#[cfg(test)]" {
            kept.push_str(line);
            kept.push('\n');
            continue;
        }
        // The item the attribute is on, after any further attributes.
        let Some(item) = lines.by_ref().find(|l| !l.trim().starts_with("#[")) else {
            break;
        };
        let declared = item
            .trim()
            .split_once("mod ")
            .filter(|(visibility, _)| visibility.is_empty() || visibility.starts_with("pub"))
            .and_then(|(_, rest)| rest.strip_suffix(';'));
        if let Some(name) = declared {
            test_children.push(String::from(name));
            continue;
        }
        if item.trim_end().ends_with('{') {
            // Up to the closing brace at the item's own indentation.
            let indent = &item[..item.len() - item.trim_start().len()];
            let close = format!("{indent}}}");
            lines.by_ref().find(|l| l.trim_end() == close);
        }
    }
    (kept, test_children)
}

/// Every path in `code` that starts at `crate`, `super` or `self`, made absolute.
fn rooted_paths(module: &[String], code: &str) -> Vec<ModPath> {
    let mut out = Vec::new();
    let mut cursor = Cursor { text: code, at: 0 };
    while cursor.at < code.len() {
        let start = cursor.at;
        let boundary = !code[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        match cursor.ident() {
            Some("crate" | "super" | "self") if boundary && cursor.rest().starts_with("::") => {
                cursor.at = start;
                let mut named = Vec::new();
                tree(&mut cursor, module.to_vec(), &mut named);
                out.extend(named.into_iter().map(|(path, _)| path));
            }
            Some(_) => {}
            None => cursor.at += code[start..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

/// The names the `use` items of a module bind (`use a::b::{c, d as e}`: `c`, `e`), with the
/// absolute paths they stand for. Paths not starting at `crate`, `super` or `self` are read
/// as the module's children; an external crate then lands on no module and is ignored.
fn imports(module: &[String], code: &str) -> BTreeMap<String, ModPath> {
    let mut out = BTreeMap::new();
    let mut cursor = Cursor { text: code, at: 0 };
    while cursor.at < code.len() {
        let start = cursor.at;
        let boundary = !code[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        match cursor.ident() {
            Some("use") if boundary => {
                let mut named = Vec::new();
                tree(&mut cursor, module.to_vec(), &mut named);
                for (path, name) in named {
                    if let Some(name) = name {
                        out.insert(name, path);
                    }
                }
            }
            Some(_) => {}
            None => cursor.at += code[start..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

/// A path or `use` tree at the cursor, from `path`: every full path it names, with the name
/// it binds (`as` alias or last segment; none for globs).
fn tree(cursor: &mut Cursor<'_>, mut path: ModPath, out: &mut Vec<(ModPath, Option<String>)>) {
    loop {
        cursor.skip_whitespace();
        if cursor.eat("{") {
            loop {
                cursor.skip_whitespace();
                if cursor.eat("}") || cursor.at >= cursor.text.len() {
                    return;
                }
                let before = cursor.at;
                tree(cursor, path.clone(), out);
                cursor.skip_whitespace();
                if !cursor.eat(",") && cursor.at == before {
                    return;
                }
            }
        }
        if cursor.eat("*") {
            out.push((path, None));
            return;
        }
        let Some(word) = cursor.ident() else {
            out.push((path, None));
            return;
        };
        let mut name = Some(String::from(word));
        match word {
            "crate" => path.clear(),
            "super" => {
                path.pop();
            }
            "self" => name = path.last().cloned(),
            _ => path.push(String::from(word)),
        }
        cursor.skip_whitespace();
        if cursor.eat("::") {
            continue;
        }
        if cursor.rest().starts_with("as ") {
            cursor.at += 3;
            cursor.skip_whitespace();
            name = cursor.ident().map(String::from);
        }
        out.push((path, name));
        return;
    }
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        self.text.get(self.at..).unwrap_or_default()
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    fn ident(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 || rest.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        self.at += len;
        rest.get(..len)
    }
}

/// Each group of siblings that reach each other, as `parent: a, b, c`.
fn circles(graph: &Graph) -> Vec<String> {
    let mut found = BTreeSet::new();
    for (parent, siblings) in graph {
        for start in siblings.keys() {
            let from_start = reach(siblings, start);
            let group: BTreeSet<&String> = from_start
                .iter()
                .filter(|other| reach(siblings, other).contains(start))
                .copied()
                .collect();
            if group.len() > 1 {
                let names: Vec<&str> = group.iter().map(|s| s.as_str()).collect();
                found.insert(format!("{}: {}", parent.join("::"), names.join(", ")));
            }
        }
    }
    found.into_iter().collect()
}

/// The siblings `start` names, directly or not, and `start` itself.
fn reach<'g>(
    siblings: &'g BTreeMap<String, BTreeSet<String>>,
    start: &'g String,
) -> BTreeSet<&'g String> {
    let mut seen = BTreeSet::from([start]);
    let mut todo = vec![start];
    while let Some(next) = todo.pop() {
        for to in siblings.get(next).into_iter().flatten() {
            if seen.insert(to) {
                todo.push(to);
            }
        }
    }
    seen
}
