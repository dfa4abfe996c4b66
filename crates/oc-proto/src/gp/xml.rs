//! GlobalProtect's XML, read as leniently as upstream reads it since it parses with
//! libxml2's recovery mode: a bare `&` is an ampersand, an unknown entity stays as it came,
//! an end tag closes the innermost open element whatever name it gives (libxml2 reports the
//! mismatch and ends the element anyway), and whatever is still open at the end of the
//! input is closed there.
//!
//! The result is a small tree of [`Element`]s, bounded in depth and size so that hostile
//! input costs no more than its length. A document is XML when its first thing (after a
//! byte order mark, white space, the declaration, comments or a doctype) is an element;
//! anything else (GlobalProtect's JavaScript answers) is not, and [`parse`] says `None`.

use std::fmt::Write as _;

/// Elements nested deeper than this are read as text of their parent's level.
pub const MAX_DEPTH: usize = 64;
/// Elements and text pieces in one document; the rest of a longer one is ignored.
pub const MAX_NODES: usize = 16_384;

/// A piece of an element's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An element: its name, attributes (entities resolved) and content in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

impl Element {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// Every child element named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.elements().filter(move |e| e.name == name)
    }

    /// All the text inside, descendants' included, in document order (libxml2's
    /// `xmlNodeGetContent`, which upstream reads every value with).
    pub fn content(&self) -> String {
        let mut out = String::new();
        self.push_content(&mut out);
        out
    }

    fn push_content(&self, out: &mut String) {
        for node in &self.children {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => e.push_content(out),
            }
        }
    }

    /// The content of the first child named `name`.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(Element::content)
    }

    /// Appends a child element holding `text` (builders of answers).
    pub fn with_text(mut self, name: &str, text: &str) -> Self {
        self.push_text(name, text);
        self
    }

    /// Appends a child element holding `text`.
    pub fn push_text(&mut self, name: &str, text: &str) {
        let mut child = Element::new(name);
        if !text.is_empty() {
            child.children.push(Node::Text(text.to_string()));
        }
        self.children.push(Node::Element(child));
    }

    /// Appends a child element.
    pub fn push(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    /// Appends a child element.
    pub fn with(mut self, child: Element) -> Self {
        self.push(child);
        self
    }

    /// Sets an attribute.
    pub fn with_attr(mut self, name: &str, value: &str) -> Self {
        self.attrs.push((name.to_string(), value.to_string()));
        self
    }

    /// The element as well-formed XML (text and attributes escaped).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (name, value) in &self.attrs {
            let _ = write!(out, " {name}=\"{}\"", escape(value));
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for node in &self.children {
            match node {
                Node::Text(t) => out.push_str(&escape(t)),
                Node::Element(e) => e.write(out),
            }
        }
        let _ = write!(out, "</{}>", self.name);
    }
}

/// `text` safe in XML text and attribute values (quick-xml's escaping, as the AnyConnect
/// XML uses).
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// The document's root element, or `None` when the input is not XML.
pub fn parse(input: &str) -> Option<Element> {
    let mut rest = input.trim_start_matches('\u{feff}');
    // The prolog: declaration, comments, doctype, white space.
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("<?") {
            rest = after.split_once("?>").map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.split_once("-->").map_or("", |(_, r)| r);
        } else if rest.starts_with("<!") && !rest.starts_with("<![CDATA[") {
            rest = rest.split_once('>').map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let after_lt = rest.strip_prefix('<')?;
    if !after_lt.starts_with(is_name_start) {
        return None;
    }
    let mut parser = Parser {
        stack: Vec::new(),
        nodes: 0,
        root: None,
    };
    parser.run(rest);
    parser.root
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.')
}

struct Parser {
    /// Open elements, the root first.
    stack: Vec<Element>,
    nodes: usize,
    root: Option<Element>,
}

impl Parser {
    fn run(&mut self, mut rest: &str) {
        while !rest.is_empty() && self.root.is_none() {
            if self.nodes >= MAX_NODES {
                break;
            }
            let Some(lt) = rest.find('<') else {
                self.text(&decode_entities(rest));
                break;
            };
            let (before, tag) = rest.split_at(lt);
            if !before.is_empty() {
                self.text(&decode_entities(before));
            }
            rest = self.markup(tag);
        }
        // Whatever is open closes at the end.
        while !self.stack.is_empty() && self.root.is_none() {
            self.close_top();
        }
    }

    /// Reads the markup at the start of `tag` (which starts with `<`); what follows it.
    fn markup<'a>(&mut self, tag: &'a str) -> &'a str {
        let body = tag.get(1..).unwrap_or_default();
        if let Some(after) = body.strip_prefix("!--") {
            return after.split_once("-->").map_or("", |(_, r)| r);
        }
        if let Some(after) = body.strip_prefix("![CDATA[") {
            let (text, rest) = after.split_once("]]>").unwrap_or((after, ""));
            self.text(text);
            return rest;
        }
        if body.starts_with('?') || body.starts_with('!') {
            return body.split_once('>').map_or("", |(_, r)| r);
        }
        if let Some(after) = body.strip_prefix('/') {
            let end = after.find('>').unwrap_or(after.len());
            let name = after.get(..end).unwrap_or_default().trim();
            self.end_tag(name);
            return after.get(end + 1..).unwrap_or_default();
        }
        if !body.starts_with(is_name_start) {
            // A lone `<`: text, as recovery reads it.
            self.text("<");
            return body;
        }
        let (inside, rest) = split_tag(body);
        let self_closing = inside.ends_with('/');
        let inside = inside.strip_suffix('/').unwrap_or(inside);
        let name_end = inside
            .find(|c: char| !is_name_char(c))
            .unwrap_or(inside.len());
        let (name, attrs) = inside.split_at(name_end);
        let element = Element {
            name: name.to_string(),
            attrs: parse_attrs(attrs),
            children: Vec::new(),
        };
        self.open(element, self_closing);
        rest
    }

    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let Some(top) = self.stack.last_mut() else {
            // Text after the root (or before it, which `parse` ruled out) is not content.
            return;
        };
        self.nodes += 1;
        match top.children.last_mut() {
            Some(Node::Text(t)) => t.push_str(text),
            _ => top.children.push(Node::Text(text.to_string())),
        }
    }

    fn open(&mut self, element: Element, self_closing: bool) {
        self.nodes += 1;
        if self.stack.len() >= MAX_DEPTH {
            // Too deep: dropped (its text still lands in the deepest element kept).
            return;
        }
        self.stack.push(element);
        if self_closing {
            self.close_top();
        }
    }

    fn end_tag(&mut self, name: &str) {
        // Recovery as libxml2's: a mismatched name is an error it reports, then the
        // innermost element ends all the same.
        let _ = name;
        self.close_top();
    }

    fn close_top(&mut self) {
        let Some(done) = self.stack.pop() else {
            return;
        };
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(Node::Element(done)),
            None => self.root = Some(done),
        }
    }
}

/// Splits `<name attrs...>rest` (without the `<`) at the `>` that is not inside a quoted
/// attribute value.
fn split_tag(body: &str) -> (&str, &str) {
    let mut quote: Option<char> = None;
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => {
                return (
                    body.get(..i).unwrap_or_default(),
                    body.get(i + 1..).unwrap_or_default(),
                )
            }
            (None, '<') => {
                // An unterminated tag: it ends where the next one starts.
                return (
                    body.get(..i).unwrap_or_default(),
                    body.get(i..).unwrap_or_default(),
                );
            }
            _ => {}
        }
    }
    (body, "")
}

/// Attributes: `name="v"`, `name='v'`, `name=v`, or a bare `name` (empty value).
fn parse_attrs(s: &str) -> Vec<(String, String)> {
    crate::form::split_attributes(s)
        .into_iter()
        .map(|(key, value)| (key.to_string(), decode_entities(value)))
        .collect()
}

/// XML's five entities and character references; anything else (a bare `&`, an unknown
/// or unterminated entity) stays as it came.
pub fn decode_entities(text: &str) -> String {
    crate::form::decode_references(text, crate::form::xml_entity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_documents_read_as_a_tree() {
        let doc = parse(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!-- c -->\
             <policy a=\"1\" b='x &amp; y' c=bare d><version> 6.7 </version>\
             <list><entry name=\"gw:443\"><description>Main</description></entry>\
             <entry/></list><![CDATA[<raw>]]></policy>trailing",
        )
        .unwrap();
        assert_eq!(doc.name, "policy");
        assert_eq!(doc.attr("b"), Some("x & y"));
        assert_eq!(doc.attr("c"), Some("bare"));
        assert_eq!(doc.attr("d"), Some(""));
        assert_eq!(doc.child_text("version").as_deref(), Some(" 6.7 "));
        let list = doc.child("list").unwrap();
        assert_eq!(list.children_named("entry").count(), 2);
        let first = list.child("entry").unwrap();
        assert_eq!(first.attr("name"), Some("gw:443"));
        assert_eq!(first.content(), "Main");
        assert!(doc.content().ends_with("<raw>"));
    }

    #[test]
    fn recovery_as_libxml2_does_it() {
        // A bare ampersand and an unknown entity stay; an unclosed element closes at the
        // end.
        let doc = parse(
            "<challenge><respmsg>from &apos;gw&apos; & more &bogus;</respmsg>\
             <inputstr>ab12<b>x</b></inputstr><user>u",
        )
        .unwrap();
        assert_eq!(
            doc.child_text("respmsg").as_deref(),
            Some("from 'gw' & more &bogus;")
        );
        assert_eq!(doc.child_text("inputstr").as_deref(), Some("ab12x"));
        assert_eq!(doc.child_text("user").as_deref(), Some("u"));
        // A misspelt end tag (fake-gp-server.py's hmac-algo) still ends its element.
        let doc =
            parse("<ipsec><hmac-algo>sha1</hmac-alog><c2s-spi>0x1</c2s-spi></ipsec>").unwrap();
        assert_eq!(doc.child_text("hmac-algo").as_deref(), Some("sha1"));
        assert_eq!(doc.child_text("c2s-spi").as_deref(), Some("0x1"));
        // End tags past the root are nothing.
        let doc = parse("<a><b>1</x></a></a></a>").unwrap();
        assert_eq!(doc.child_text("b").as_deref(), Some("1"));
    }

    #[test]
    fn javascript_and_text_are_not_xml() {
        assert!(parse("var respStatus = \"Challenge\";\n").is_none());
        assert!(parse("Invalid username or password").is_none());
        assert!(parse("").is_none());
        assert!(parse("<?xml version=\"1.0\"?>").is_none());
        assert!(parse("< notatag").is_none());
        assert!(parse("\u{feff}  <a/>").is_some());
    }

    #[test]
    fn hostile_depth_and_size_are_bounded() {
        let deep = "<a>".repeat(10_000) + "x";
        let doc = parse(&deep).unwrap();
        let mut depth = 0;
        let mut e = &doc;
        while let Some(c) = e.child("a") {
            e = c;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH - 1);
        assert_eq!(e.content(), "x");
        let wide = format!("<r>{}</r>", "<e/>".repeat(MAX_NODES * 2));
        assert!(parse(&wide).unwrap().elements().count() < MAX_NODES);
        for junk in [
            "<",
            "<a",
            "<a b=\"",
            "<a><![CDATA[",
            "<a><!--",
            "<a></",
            "<a b='>'",
        ] {
            let _ = parse(junk);
        }
    }

    #[test]
    fn building_and_reading_round_trip() {
        let built = Element::new("response")
            .with_attr("status", "a\"b<")
            .with_text("msg", "x & <y> 'z'")
            .with(Element::new("empty"));
        let xml = built.to_xml();
        assert_eq!(parse(&xml), Some(built));
        assert_eq!(
            decode_entities("&#65;&#x42;&amp&lt;&;&#xZZ;"),
            "AB&amp<&;&#xZZ;"
        );
    }
}
