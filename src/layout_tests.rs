//! The shape of the house, checked like behaviour: no import cycle between
//! source files, and `ARCHITECTURE.md`'s module map names every one of them.
//! Reading `use crate::…` / `use super::…` statements is enough for both
//! (a path written inline in code is not an import we build layers on).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, as `src/…` paths.
fn source_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src_dir(), &mut files);
    let root = src_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    files
        .iter()
        .filter_map(|p| p.strip_prefix(&root).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect()
}

/// The module path of a file: `src/http/mod.rs` → `["http"]`,
/// `src/http/error.rs` → `["http", "error"]`, `src/lib.rs` → `[]`.
fn module_of(file: &str) -> Vec<String> {
    let rel = file.trim_start_matches("src/").trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The statements `use …;` of a source text, each on one line, with
/// comments dropped.
fn use_statements(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let starts_statement = before
            .chars()
            .rev()
            .find(|c| !c.is_whitespace())
            .is_none_or(|c| matches!(c, ';' | '{' | '}' | ']' | ')'))
            || before.trim_end().ends_with("pub")
            || before.trim_end().ends_with("pub(crate)");
        rest = &rest[at + 4..];
        if !starts_statement {
            continue;
        }
        if let Some(end) = rest.find(';') {
            let stmt = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
            out.push(tight(&stmt));
            rest = &rest[end..];
        }
    }
    out
}

/// `a :: { b , c }` → `a::{b,c}`: no spaces but those of `x as y`.
fn tight(stmt: &str) -> String {
    let mut out = String::with_capacity(stmt.len());
    let chars: Vec<char> = stmt.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let near = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|n| ":,{}".contains(*n))
        };
        if c == ' ' && (near(i.checked_sub(1)) || near(Some(i + 1))) {
            continue;
        }
        out.push(c);
    }
    out
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .flat_map(|i| expand(&format!("{prefix}{i}")))
        .collect()
}

/// The file a `use` path of `from` names, if it is one of ours: the
/// longest prefix of the path that is a module with its own file.
fn target(from: &[String], path: &str, modules: &BTreeMap<Vec<String>, String>) -> Option<String> {
    let path = path.split(" as ").next().unwrap_or(path);
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<String> = match segs.first() {
        Some(&"crate") => Vec::new(),
        Some(&"super") => from[..from.len().saturating_sub(1)].to_vec(),
        Some(&"self") => from.to_vec(),
        _ => return None,
    };
    segs.remove(0);
    while segs.first() == Some(&"super") {
        base.pop();
        segs.remove(0);
    }
    let mut best = None;
    let mut m = base.clone();
    if modules.contains_key(&m) {
        best = modules.get(&m).cloned();
    }
    for s in segs {
        m.push(s.to_owned());
        if let Some(f) = modules.get(&m) {
            best = Some(f.clone());
        }
    }
    best
}

/// File → files it imports from.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = source_files();
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .filter(|f| !f.ends_with("/main.rs"))
        .map(|f| (module_of(f), f.clone()))
        .collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .unwrap_or_default();
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let mut to = BTreeSet::new();
        for stmt in use_statements(text) {
            for path in expand(&stmt) {
                if let Some(t) = target(&from, &path, &modules)
                    && &t != file
                {
                    to.insert(t);
                }
            }
        }
        graph.insert(file.clone(), to);
    }
    graph
}

/// The import cycles of `graph`: its strongly connected components of more
/// than one file (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_import_cycle_between_source_files() {
    let graph = import_graph();
    assert!(graph.len() > 20, "the source files were not found");
    assert!(
        graph["src/http/media.rs"].contains("src/pipeline.rs"),
        "the import reader misses plain `use crate::…` lines"
    );
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "import cycles between source files: {found:#?}"
    );
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned());
            g.entry((*b).to_owned()).or_default();
        }
        g
    };
    assert!(cycles(&g(&[("a", "b"), ("b", "c")])).is_empty());
    assert_eq!(
        cycles(&g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])),
        vec![vec!["a".to_owned(), "b".into(), "c".into()]]
    );
}

#[test]
fn use_statements_are_read_whole() {
    let text = "use crate::a::{B, c::{D, E as F}};\npub use super::g::H; // use crate::x;\nfn f() { let _ = 1; }\n";
    let paths: Vec<String> = use_statements(text)
        .iter()
        .flat_map(|s| expand(s))
        .collect();
    assert_eq!(
        paths,
        [
            "crate::a::B",
            "crate::a::c::D",
            "crate::a::c::E as F",
            "super::g::H"
        ]
    );
}

#[test]
fn the_module_map_names_every_source_file() {
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap_or_else(|e| panic!("ARCHITECTURE.md: {e}"));
    let missing: Vec<String> = source_files()
        .into_iter()
        .filter(|f| !map.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's module map does not name (as `src/…`): {missing:?}"
    );
}
