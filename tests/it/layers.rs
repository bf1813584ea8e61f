//! The graph of top-level modules under `src/`, held against ARCHITECTURE §1.1: no cycle,
//! imports only down (or across) the layer table, cross-module paths in `use` lines.
//!
//! It reads the source text (std only, no compiler output), so the parser is tested below on
//! small inputs: a parser that finds nothing must not make the real tests pass.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// ARCHITECTURE §1.1, top to bottom. A module may use its own layer or any lower one.
#[rustfmt::skip] // a table: one layer a line
const LAYERS: &[(&str, &[&str])] = &[
    ("entry", &["main", "app", "cli"]),
    ("web", &["http"]),
    ("protocol", &["oauth", "oidc"]),
    ("services", &["core", "login", "tokens", "janitor"]),
    ("state", &["store"]),
    ("base", &["config", "secret", "crypto", "domain", "metrics", "audit", "telemetry", "clock"]),
];

/// A path written in the source, made absolute (`crate::` dropped, `super::` resolved).
struct Ref {
    path: Vec<String>,
    line: usize,
    in_use: bool,
}

/// A reference from one top-level module to another and the place that makes it.
struct Edge {
    from: String,
    to: String,
    site: String,
    text: String,
    in_use: bool,
}

type Tok = (String, usize);
type Graph<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a str>>>;

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// End of the comment or string/char literal starting at `c[i]`, if one starts there.
fn literal_end(c: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let find = |from: usize, pat: &[char]| (from..c.len()).find(|&k| c[k..].starts_with(pat));
    match (at(i), at(i + 1)) {
        ('/', '/') => Some(find(i, &['\n']).unwrap_or(c.len())),
        ('/', '*') => Some(find(i + 2, &['*', '/']).map_or(c.len(), |k| k + 2)),
        ('"', _) => {
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            Some(k + 1)
        }
        // r"…" and r#"…"#, but neither an identifier ending in `r` nor a raw identifier r#name.
        ('r', '#' | '"') if i == 0 || !is_ident(at(i - 1)) => {
            let hashes = (i + 1..c.len()).take_while(|&k| c[k] == '#').count();
            let close: Vec<char> = format!("\"{}", "#".repeat(hashes)).chars().collect();
            (at(i + 1 + hashes) == '"')
                .then(|| find(i + 2 + hashes, &close).map_or(c.len(), |k| k + close.len()))
        }
        ('\'', '\\') => find(i + 3, &['\'']).map(|k| k + 1),
        ('\'', _) if at(i + 2) == '\'' => Some(i + 3), // 'x'; a lifetime 'a has no closing quote
        _ => None,
    }
}

/// Identifiers, `::` and single punctuation, each with its line. Comments and literals are
/// dropped, so a commented-out `use` or a path inside a string counts for nothing.
fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < c.len() {
        let end = if let Some(end) = literal_end(&c, i) {
            end.min(c.len())
        } else if is_ident(c[i]) {
            let end = (i..c.len()).find(|&k| !is_ident(c[k])).unwrap_or(c.len());
            out.push((c[i..end].iter().collect(), line));
            end
        } else if c[i..].starts_with(&[':', ':']) {
            out.push(("::".to_owned(), line));
            i + 2
        } else {
            if !c[i].is_whitespace() {
                out.push((c[i].to_string(), line));
            }
            i + 1
        };
        line += c[i..end].iter().filter(|&&ch| ch == '\n').count();
        i = end;
    }
    out
}

/// Expands the use tree at `toks[*i]` (`a::{b as c, d::{self, e}, f::*}`) into leaf paths.
fn use_tree(toks: &[Tok], i: &mut usize, prefix: &[Tok], leaves: &mut Vec<Vec<Tok>>) {
    let mut path = prefix.to_vec();
    while let Some((t, _)) = toks.get(*i) {
        match t.as_str() {
            "{" => {
                *i += 1;
                while toks.get(*i).is_some_and(|t| t.0 != "}" && t.0 != ";") {
                    use_tree(toks, i, &path, leaves);
                    *i += usize::from(toks.get(*i).is_some_and(|t| t.0 == ","));
                }
                *i += 1;
                return;
            }
            "," | "}" | ";" => break,
            "as" => *i += 2,
            "self" if !path.is_empty() => *i += 1, // `a::{self}` names `a` itself
            "::" | "*" => *i += 1,
            _ => {
                path.push(toks[*i].clone());
                *i += 1;
            }
        }
    }
    leaves.push(path);
}

/// Makes a written path absolute from the module `here`; `None` for `std::…`, a dependency or
/// a name in scope. `valet::` is how `main.rs` (a separate crate) names the library.
fn resolve(here: &[String], segs: &[Tok], in_use: bool) -> Option<Ref> {
    let first = segs.first()?;
    let (base, rest) = match first.0.as_str() {
        "crate" | "valet" => (vec![], &segs[1..]),
        "self" | "super" => {
            let mut base: Vec<Tok> = here.iter().map(|m| (m.clone(), first.1)).collect();
            let mut k = usize::from(first.0 == "self");
            while segs.get(k).is_some_and(|s| s.0 == "super") {
                base.pop()?; // above the crate root: not a path
                k += 1;
            }
            (base, &segs[k..])
        }
        _ => return None,
    };
    let path: Vec<Tok> = base.into_iter().chain(rest.iter().cloned()).collect();
    let line = path.first()?.1; // the line that names the top-level module
    let path = path.into_iter().map(|s| s.0).collect();
    Some(Ref { path, line, in_use })
}

/// Every path in `src` that starts at `crate`, `self` or `super`, for a file whose module path
/// is `module` (`["oauth", "grants", "password"]`). Inline `mod name { … }` blocks (tests)
/// are followed, so that their `super::` resolves from the right place.
fn references(module: &[&str], src: &str) -> Vec<Ref> {
    let toks = tokens(src);
    let tok = |k: usize| toks.get(k).map_or("", |t| t.0.as_str());
    // `here` grows by one name inside each inline `mod name {`, opened at brace depth `opened`.
    let mut here: Vec<String> = module.iter().map(|m| m.to_string()).collect();
    let (mut out, mut opened, mut depth, mut i) = (Vec::new(), Vec::new(), 0, 0);
    while i < toks.len() {
        match tok(i) {
            "use" if tok(i + 1) != "<" => {
                let (mut leaves, mut k) = (Vec::new(), i + 1);
                while k < toks.len() && tok(k) != ";" {
                    use_tree(&toks, &mut k, &[], &mut leaves);
                    k += usize::from(tok(k) == "," || tok(k) == "}"); // never stall
                }
                out.extend(leaves.iter().filter_map(|leaf| resolve(&here, leaf, true)));
                i = k;
            }
            "mod" if tok(i + 2) == "{" => {
                here.push(tok(i + 1).to_owned());
                opened.push(depth);
            }
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if opened.last() == Some(&depth) {
                    opened.pop();
                    here.pop();
                }
            }
            "crate" | "valet" | "self" | "super"
                if tok(i + 1) == "::" && (i == 0 || tok(i - 1) != "::") =>
            {
                let mut segs = vec![toks[i].clone()];
                while tok(i + 1) == "::" && tok(i + 2).starts_with(is_ident) {
                    segs.push(toks[i + 2].clone());
                    i += 2;
                }
                out.extend(resolve(&here, &segs, false));
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A file's module path: `oauth/grants/password.rs` -> oauth::grants::password; a `mod.rs`
/// is its folder's module.
fn module_path(rel: &Path) -> Vec<String> {
    let mut module: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|c| c.to_string_lossy().into())
        .collect();
    if module.last().is_some_and(|m| m == "mod") {
        module.pop();
    }
    module
}

/// The edges between top-level modules, in file and line order, and every top-level module.
fn edges() -> (BTreeSet<String>, Vec<Edge>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (mut files, mut dirs) = (Vec::new(), vec![src.clone()]);
    while let Some(dir) = dirs.pop() {
        for path in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path.strip_prefix(&src).unwrap().to_owned());
            }
        }
    }
    files.sort();
    files.retain(|f| f != Path::new("lib.rs")); // the root only declares the modules
    let modules: BTreeSet<String> = files.iter().map(|f| module_path(f)[0].clone()).collect();
    let mut out = Vec::new();
    for file in &files {
        let module = module_path(file);
        let module: Vec<&str> = module.iter().map(String::as_str).collect();
        let source = std::fs::read_to_string(src.join(file)).unwrap();
        for r in references(&module, &source) {
            // A name at the crate root that is no module (an exported macro) is no edge.
            if r.path[0] != module[0] && modules.contains(&r.path[0]) {
                out.push(Edge {
                    from: module[0].to_owned(),
                    to: r.path[0].clone(),
                    site: format!("src/{}:{}", file.display(), r.line),
                    text: format!("crate::{}", r.path.join("::")),
                    in_use: r.in_use,
                });
            }
        }
    }
    assert!(
        modules.len() > 1 && !out.is_empty(),
        "no module graph found under {src:?}"
    );
    (modules, out)
}

/// from -> to -> the distinct sites that make the edge.
fn graph(edges: &[Edge]) -> Graph<'_> {
    let mut g = Graph::new();
    for e in edges {
        let sites = g.entry(&*e.from).or_default().entry(&*e.to).or_default();
        if sites.last() != Some(&&*e.site) {
            sites.push(&e.site); // one line importing two items is one site
        }
    }
    g
}

/// Breadth-first from `start`: every module reachable, mapped to the one it was reached from.
fn reached<'a>(g: &Graph<'a>, start: &'a str) -> BTreeMap<&'a str, &'a str> {
    let (mut parent, mut queue) = (BTreeMap::new(), VecDeque::from([start]));
    while let Some(m) = queue.pop_front() {
        for &next in g.get(m).into_iter().flat_map(|tos| tos.keys()) {
            if !parent.contains_key(next) {
                parent.insert(next, m);
                queue.push_back(next);
            }
        }
    }
    parent
}

#[test]
fn top_level_modules_form_no_cycle() {
    let (_, edges) = edges();
    let g = graph(&edges);
    let (mut report, mut seen) = (String::new(), BTreeSet::new());
    for &start in g.keys() {
        let from_start = reached(&g, start);
        if seen.contains(start) || !from_start.contains_key(start) {
            continue;
        }
        // The strongly connected component: what `start` reaches and what reaches it back.
        let scc: Vec<&str> = from_start
            .keys()
            .copied()
            .filter(|&m| reached(&g, m).contains_key(start))
            .collect();
        seen.extend(scc.iter().copied());
        // A shortest cycle through `start`, read backwards along the breadth-first parents.
        let mut cycle = vec![start, from_start[start]];
        while cycle[cycle.len() - 1] != start {
            cycle.push(from_start[cycle[cycle.len() - 1]]);
        }
        cycle.reverse();
        let (n, path) = (scc.len(), cycle.join(" -> "));
        report += &format!("{n} modules {scc:?}, e.g. {path}:\n");
        for pair in cycle.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            report += &format!("    {from} -> {to}  first at {}\n", g[from][to][0]);
        }
        report += "  every edge among them:\n";
        for &from in &scc {
            for (to, sites) in g[from].iter().filter(|(to, _)| scc.contains(to)) {
                let (n, first) = (sites.len(), sites[0]);
                report += &format!("    {from} -> {to}  {n} site(s), first at {first}\n");
            }
        }
    }
    assert!(
        report.is_empty(),
        "top-level modules form a cycle (ARCHITECTURE §1.1):\n{report}"
    );
}

#[test]
fn imports_follow_the_layer_table() {
    let (modules, edges) = edges();
    let layer = |m: &str| LAYERS.iter().position(|(_, ms)| ms.contains(&m));
    let mut report = String::new();
    for m in modules.iter().filter(|m| layer(m).is_none()) {
        report += &format!("src/{m}: top-level module `{m}` is not in the layer table\n");
    }
    for (from, tos) in graph(&edges) {
        for (to, sites) in tos {
            let (Some(lf), Some(lt)) = (layer(from), layer(to)) else {
                continue;
            };
            let rule = if from == "oauth" && to == "oidc" {
                "oidc sits on oauth, never the reverse"
            } else if lf > 1 && ["http", "app", "cli", "main"].contains(&to) {
                "below the web layer nothing may use http, app, cli or main"
            } else if lf > 0 && to == "app" {
                "only the entry layer may use app"
            } else if lt < lf {
                "imports go down the layer table, not up"
            } else {
                continue;
            };
            let (lf, lt) = (LAYERS[lf].0, LAYERS[lt].0);
            report += &format!(
                "{from} ({lf}) -> {to} ({lt}): {rule}\n    at {}\n",
                sites.join(", ")
            );
        }
    }
    assert!(
        report.is_empty(),
        "imports break the layer table (ARCHITECTURE §1.1):\n{report}"
    );
}

#[test]
fn cross_module_paths_are_in_use_lines() {
    let (_, edges) = edges();
    let inline = edges.iter().filter(|e| !e.in_use);
    let inline: Vec<_> = inline
        .map(|e| format!("  {}: {} ({} -> {})", e.site, e.text, e.from, e.to))
        .collect();
    assert!(
        inline.is_empty(),
        "{} inline path(s) into another top-level module; put them in `use` lines \
         (ARCHITECTURE §1.1):\n{}",
        inline.len(),
        inline.join("\n")
    );
}

// The parser, on small inputs.

/// `line use|inline path` for each reference found.
fn paths(module: &[&str], src: &str) -> Vec<String> {
    let show = |r: Ref| {
        let kind = if r.in_use { "use" } else { "inline" };
        format!("{} {kind} {}", r.line, r.path.join("::"))
    };
    references(module, src).into_iter().map(show).collect()
}

#[test]
fn parser_expands_a_grouped_multi_line_use() {
    let src = "use crate::{\n    http::cors::{self, is_origin},\n    store::Store as S,\n    domain::*,\n};";
    let want = [
        "2 use http::cors",
        "2 use http::cors::is_origin",
        "3 use store::Store",
        "4 use domain",
    ];
    assert_eq!(paths(&["config"], src), want);
}

#[test]
fn parser_resolves_super_from_nested_files_and_inline_modules() {
    let src = "use super::super::scope;\nuse super::Sibling;\nmod tests {\n    use super::super::x;\n}\nfn f() { super::super::super::http::f(); }";
    let want = [
        "1 use oauth::scope",
        "2 use oauth::grants::Sibling",
        "4 use oauth::grants::x",
        "6 inline http::f",
    ];
    assert_eq!(paths(&["oauth", "grants", "password"], src), want);
    // A mod.rs file is its folder's module, so its `super` is the folder's parent.
    assert_eq!(
        module_path(Path::new("oauth/grants/mod.rs")),
        ["oauth", "grants"]
    );
    assert_eq!(
        paths(&["oauth", "grants"], "use super::token;"),
        ["1 use oauth::token"]
    );
}

#[test]
fn parser_skips_comments_strings_and_other_paths() {
    let src = "// use crate::http;\n/// crate::app::run\n/* crate::cli */ pub(crate) fn f<'a>(x: &'a str) {\n    let s = (\"crate::http\", r#\"crate::\"app\"#, '\"');\n    crate::store::open(x, '{');\n}\nuse std::fmt;";
    assert_eq!(paths(&["config"], src), ["5 inline store::open"]);
}
