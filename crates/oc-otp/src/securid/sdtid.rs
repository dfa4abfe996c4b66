//! RSA `.sdtid` XML token files: a `<TKNBatch>` with a `<TKNHeader>` (batch secret and
//! `Def*` defaults), one `<TKN>` (serial, encrypted seed, per-token overrides) and a
//! `<TKNTrailer>`. The seed key and two MACs are derived from the batch secret and either
//! the header's `<Origin>` (no password) or the user's password.

use quick_xml::events::Event;

use super::crypto::{aes128_encrypt, base64_decode_relaxed, xor_into, Block};
use super::ctf::{
    DIGIT_MASK, DIGIT_SHIFT, FL_128BIT, FL_APPSEEDS, FL_FEAT4, FL_TIMESEEDS, PINMODE_SHIFT,
};
use super::SecurIdError;
use crate::calendar::days_from_civil;

const BATCH_MAC_IV: Block = [
    0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
];
const TOKEN_MAC_IV: Block = [
    0x1b, 0xb6, 0x7a, 0xe8, 0x58, 0x4c, 0xaa, 0x73, 0xb2, 0x57, 0x42, 0xd7, 0x07, 0x8b, 0x83, 0xb8,
];
const TOKEN_ENC_IV: Block = [
    0x16, 0xa0, 0x9e, 0x66, 0x7f, 0x3b, 0xcc, 0x90, 0x8b, 0x2f, 0xb1, 0x36, 0x6e, 0xa9, 0x57, 0xd3,
];

/// The MAC input buffer is a fixed 64 KiB in stoken; longer input is an error there.
const HASH_BUFFER: usize = 65_536;
/// Deeper nesting than this is refused rather than recursed into.
const MAX_DEPTH: usize = 256;

#[derive(Clone, Debug)]
enum Node {
    Element(Element),
    Text(String),
}

#[derive(Clone, Debug)]
struct Element {
    name: String,
    children: Vec<Node>,
}

impl Element {
    fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// All text below this element, in document order (libxml's node content).
    fn content(&self) -> String {
        let mut out = String::new();
        self.collect_text(&mut out);
        out
    }

    fn collect_text(&self, out: &mut String) {
        for child in &self.children {
            match child {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => e.collect_text(out),
            }
        }
    }

    /// Depth-first search that looks inside each child before testing the child itself.
    fn find(&self, name: &str) -> Option<&Element> {
        for child in self.elements() {
            if let Some(found) = child.find(name) {
                return Some(found);
            }
            if child.name == name {
                return Some(child);
            }
        }
        None
    }
}

fn xml_error(msg: impl std::fmt::Display) -> SecurIdError {
    SecurIdError::Xml(msg.to_string())
}

fn add_text(stack: &mut [Element], text: &str) -> Result<(), SecurIdError> {
    if text.contains('\0') {
        return Err(xml_error("NUL character in text"));
    }
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(prev)) = parent.children.last_mut() {
                prev.push_str(text);
            } else {
                parent.children.push(Node::Text(text.to_string()));
            }
            Ok(())
        }
        None if text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) => Ok(()),
        None => Err(xml_error("text outside the root element")),
    }
}

fn resolve_entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let value = match num.strip_prefix('x') {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        return char::from_u32(value).filter(|&c| c != '\0');
    }
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

/// Parses a whole XML document into a small element tree; like libxml, anything that is
/// not well-formed is an error.
fn parse_document(xml: &str) -> Result<Element, SecurIdError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| xml_error(format_args!("at byte {}: {e}", reader.error_position())))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(xml_error("a second element after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(xml_error("elements nested too deeply"));
                }
                for attr in start.attributes() {
                    attr.map_err(|e| xml_error(format_args!("bad attribute: {e}")))?;
                }
                let name = start.name().as_ref().to_string();
                stack.push(Element {
                    name,
                    children: Vec::new(),
                });
            }
            Event::End(_) => {
                let done = stack.pop().ok_or_else(|| xml_error("unexpected end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(done)),
                    None => root = Some(done),
                }
            }
            Event::Text(text) => add_text(&mut stack, &text.xml10_content())?,
            Event::CData(cdata) => {
                if stack.is_empty() {
                    return Err(xml_error("CDATA outside the root element"));
                }
                add_text(&mut stack, &cdata.xml10_content())?;
            }
            Event::GeneralRef(reference) => {
                let c = resolve_entity(&reference)
                    .ok_or_else(|| xml_error("undefined entity or bad character reference"))?;
                if stack.is_empty() {
                    return Err(xml_error("entity reference outside the root element"));
                }
                add_text(&mut stack, c.encode_utf8(&mut [0u8; 4]))?;
            }
            Event::Empty(_) => return Err(xml_error("unexpected empty element event")),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(xml_error(format_args!(
            "element <{}> is not closed",
            open.name
        )));
    }
    root.ok_or_else(|| xml_error("no root element"))
}

/// The parts of an sdtid document the token needs.
#[derive(Clone)]
pub(crate) struct Sdtid {
    header: Element,
    tkn: Element,
}

/// What decoding an sdtid file yields before any password is involved.
pub(crate) struct SdtidToken {
    pub doc: Sdtid,
    pub serial: [u8; 12],
    pub flags: u16,
    pub exp_date: u16,
    /// The seed, when the file decrypts without a password.
    pub seed: Option<Block>,
}

/// Why [`Sdtid::decrypt`] failed.
pub(crate) enum DecryptFailure {
    /// Neither MAC matches: the file needs a password (or another one).
    BothMacs,
    Error(SecurIdError),
}

impl From<SecurIdError> for DecryptFailure {
    fn from(e: SecurIdError) -> Self {
        DecryptFailure::Error(e)
    }
}

fn c_isspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn c_trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| !c_isspace(c)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&c| !c_isspace(c))
        .map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// `strtol(s, &end, 0)` that must consume the whole, non-empty string.
fn parse_c_long(s: &str) -> Option<i64> {
    let bytes = s.as_bytes();
    let mut i = bytes.iter().position(|&c| !c_isspace(c))?;
    let mut negative = false;
    if let Some(&sign @ (b'+' | b'-')) = bytes.get(i) {
        negative = sign == b'-';
        i += 1;
    }
    let rest = bytes.get(i..)?;
    let (radix, digits) = match rest {
        [b'0', b'x' | b'X', c, ..] if c.is_ascii_hexdigit() => (16, rest.get(2..)?),
        [b'0', ..] => (8, rest),
        _ => (10, rest),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i128 = 0;
    for &c in digits {
        let d = char::from(c).to_digit(radix)?;
        value = (value * i128::from(radix) + i128::from(d)).min(i128::from(i64::MAX) + 1);
    }
    let value = if negative { -value } else { value };
    Some(value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// `sscanf(s, "%d/%d/%d")` followed by `timegm()`: days since 2000-01-01, truncated to 16
/// bits as stoken stores it. `None` when the text does not have that shape.
fn parse_death_date(s: &str) -> Option<u16> {
    fn int(bytes: &[u8], mut i: usize) -> Option<(i64, usize)> {
        while bytes.get(i).is_some_and(|&c| c_isspace(c)) {
            i += 1;
        }
        let start = i;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits_start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == digits_start {
            return None;
        }
        let text = std::str::from_utf8(bytes.get(start..i)?).ok()?;
        let value = text.parse::<i64>().unwrap_or(if text.starts_with('-') {
            i64::from(i32::MIN)
        } else {
            i64::from(i32::MAX)
        });
        Some((i64::from(value as i32), i))
    }
    let b = s.as_bytes();
    let (year, i) = int(b, 0)?;
    if b.get(i) != Some(&b'/') {
        return None;
    }
    let (month, i) = int(b, i + 1)?;
    if b.get(i) != Some(&b'/') {
        return None;
    }
    let (day, _) = int(b, i + 1)?;
    // timegm() normalises out-of-range months and days.
    let month0 = month - 1;
    let year = year + month0.div_euclid(12);
    let month = (month0.rem_euclid(12) + 1) as u32;
    let days = days_from_civil(year, month, 1) + (day - 1);
    Some((days - super::SECURID_EPOCH_DAYS as i64) as u16)
}

fn strncpy_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// CBC-MAC style chaining: state = AES_key(state ^ block) over zero-padded blocks.
fn cbc_hash(key: &Block, iv: &Block, data: &[u8]) -> Block {
    let mut state = *iv;
    for chunk in data.chunks(16) {
        let mut block = [0u8; 16];
        block[..chunk.len()].copy_from_slice(chunk);
        xor_into(&mut state, &block);
        state = aes128_encrypt(key, &state);
    }
    state
}

fn hash_password(pass: &[u8], dest: &[u8], name: &[u8]) -> Block {
    let mut key = [0u8; 16];
    strncpy_into(&mut key, name);
    let mut data = [0u8; 0x50];
    strncpy_into(&mut data[..0x20], pass);
    strncpy_into(&mut data[0x20..0x40], dest);
    let mut result = [0u8; 16];
    for i in 0u16..1000 {
        data[0x4e..0x50].copy_from_slice(&i.to_be_bytes());
        xor_into(&mut result, &cbc_hash(&key, &[0u8; 16], &data));
    }
    result
}

fn calc_key(label: &[u8], extra: &[u8], key: &Block, iv: &Block) -> Block {
    let mut buf = [0u8; 0x40];
    strncpy_into(&mut buf[..0x20], label);
    strncpy_into(&mut buf[0x20..], extra);
    cbc_hash(key, iv, &buf)
}

/// Replays stoken's (and RSA's) serialisation of a section for its MAC: one
/// `path value\n` line per leaf element, with odd alignment padding between lines.
struct SectionHasher {
    data: Vec<u8>,
    pos: usize,
    padding: usize,
}

impl SectionHasher {
    fn new() -> Self {
        SectionHasher {
            data: vec![0u8; HASH_BUFFER],
            pos: 0,
            padding: 0,
        }
    }

    /// snprintf(&data[at], room, "%s", line): truncating copy plus a NUL terminator.
    fn put(&mut self, at: usize, room: usize, line: &[u8]) {
        if room == 0 {
            return;
        }
        let n = line.len().min(room - 1);
        if let Some(dst) = self.data.get_mut(at..at + n) {
            dst.copy_from_slice(&line[..n]);
        }
        if let Some(nul) = self.data.get_mut(at + n) {
            *nul = 0;
        }
    }

    fn section(
        &mut self,
        prefix: &str,
        node: &Element,
        depth: usize,
    ) -> Result<usize, SecurIdError> {
        let too_big = || SecurIdError::SdtidValue {
            node: "TKNBatch",
            reason: "the section is too large to check".into(),
        };
        if depth > MAX_DEPTH {
            return Err(too_big());
        }
        let mut children = 0;
        for child in node.elements() {
            children += 1;
            if child.name.len() > 3 && child.name.ends_with("MAC") {
                continue;
            }
            let path = format!("{prefix}.{}", child.name);
            if self.section(&path, child, depth + 1)? > 0 {
                continue;
            }
            let value = child.content();
            let remain = HASH_BUFFER.checked_sub(self.pos).ok_or_else(too_big)?;
            let line = if value.is_empty() {
                format!("{path} </{}>\n", child.name)
            } else {
                format!("{path} {value}\n")
            };
            let bytes = line.len();
            self.put(self.pos, remain, line.as_bytes());
            if !value.is_empty() && bytes + self.padding <= 16 && bytes + self.padding < remain {
                // A short line that fits in one AES block is moved back to the block start.
                self.pos &= !0xf;
                self.put(self.pos, remain, line.as_bytes());
                let pad_start = self.pos + bytes;
                if let Some(pad) = self.data.get_mut(pad_start..pad_start + self.padding) {
                    pad.fill(0);
                }
            }
            if bytes >= remain {
                return Err(too_big());
            }
            self.pos += bytes + self.padding;
            self.padding = match self.pos & 0xf {
                0 => 0x10,
                n => n,
            };
        }
        Ok(children)
    }

    fn mac(mut self, node: &Element, key: &Block, iv: &Block) -> Result<Block, SecurIdError> {
        self.section(&node.name, node, 0)?;
        let data = self
            .data
            .get(..self.pos)
            .ok_or_else(|| SecurIdError::SdtidValue {
                node: "TKNBatch",
                reason: "the section is too large to check".into(),
            })?;
        Ok(cbc_hash(key, iv, data))
    }
}

impl Sdtid {
    /// `<TKN>` first, then `Def<name>` in the header, then `<name>` in the header.
    fn lookup(&self, name: &str) -> Option<String> {
        self.tkn
            .find(name)
            .or_else(|| self.header.find(&format!("Def{name}")))
            .or_else(|| self.header.find(name))
            .map(Element::content)
    }

    fn lookup_int(&self, name: &'static str, default: i64) -> Result<i64, SecurIdError> {
        match self.lookup(name) {
            None => Ok(default),
            Some(text) => parse_c_long(&text).ok_or(SecurIdError::SdtidValue {
                node: name,
                reason: "not an integer".into(),
            }),
        }
    }

    fn required_trimmed(&self, name: &'static str) -> Result<Vec<u8>, SecurIdError> {
        let value = self
            .lookup(name)
            .ok_or_else(|| SecurIdError::SdtidMissing(name.into()))?;
        Ok(c_trim(value.as_bytes()).to_vec())
    }

    fn required_block(&self, name: &'static str) -> Result<Block, SecurIdError> {
        let value = self
            .lookup(name)
            .ok_or_else(|| SecurIdError::SdtidMissing(name.into()))?;
        let mut text = value.as_bytes();
        if name == "Seed" {
            // The first character of <Seed> is a dummy.
            text = text.get(1..).unwrap_or_default();
        }
        let bad = || SecurIdError::SdtidValue {
            node: name,
            reason: "not 16 bytes of base64".into(),
        };
        base64_decode_relaxed(text, 16)
            .map_err(|_| bad())?
            .as_slice()
            .try_into()
            .map_err(|_| bad())
    }

    /// Decrypts the seed with `pass`, or with the header's `<Origin>` when `None`.
    pub(crate) fn decrypt(&self, pass: Option<&[u8]>) -> Result<Block, DecryptFailure> {
        let sn = self.required_trimmed("SN")?;
        let origin = self.required_trimmed("Origin")?;
        let dest = self.required_trimmed("Dest")?;
        let name = self.required_trimmed("Name")?;
        let secret = self.required_block("Secret")?;

        let key0 = hash_password(pass.unwrap_or(&origin), &dest, &name);
        let mut secret_block = [0u8; 16];
        strncpy_into(&mut secret_block[..6], b"Secret");
        strncpy_into(&mut secret_block[8..], &name);
        let mut key1 = aes128_encrypt(&key0, &secret_block);
        xor_into(&mut key1, &secret);

        let batch_mac_key = calc_key(b"BatchMAC", &name, &key1, &BATCH_MAC_IV);
        let token_mac_key = calc_key(b"TokenMAC", &sn, &key1, &TOKEN_MAC_IV);
        let token_enc_key = calc_key(b"TokenEncrypt", &sn, &key1, &TOKEN_ENC_IV);

        let enc_seed = self.required_block("Seed")?;
        let header_mac = self.required_block("HeaderMAC")?;
        let header_ok =
            SectionHasher::new().mac(&self.header, &batch_mac_key, &BATCH_MAC_IV)? == header_mac;
        let token_mac = self.required_block("TokenMAC")?;
        let token_ok =
            SectionHasher::new().mac(&self.tkn, &token_mac_key, &TOKEN_MAC_IV)? == token_mac;

        match (header_ok, token_ok) {
            (false, false) => return Err(DecryptFailure::BothMacs),
            (false, true) => return Err(SecurIdError::SdtidMac("header").into()),
            (true, false) => return Err(SecurIdError::SdtidMac("token").into()),
            (true, true) => {}
        }
        let mut seed_block = [0u8; 16];
        strncpy_into(&mut seed_block[..8], &sn);
        strncpy_into(&mut seed_block[8..], b"Seed");
        let mut seed = aes128_encrypt(&token_enc_key, &seed_block);
        xor_into(&mut seed, &enc_seed);
        Ok(seed)
    }
}

/// Decodes sdtid XML (starting at its `<?xml` declaration) holding exactly one token.
pub(crate) fn decode(xml: &str) -> Result<SdtidToken, SecurIdError> {
    let root = parse_document(xml)?;
    if root.name != "TKNBatch" {
        return Err(SecurIdError::SdtidMissing("TKNBatch".into()));
    }
    let header = root.elements().find(|e| e.name == "TKNHeader").cloned();
    let trailer_present = root.elements().any(|e| e.name == "TKNTrailer");
    let mut tokens = root.elements().filter(|e| e.name == "TKN");
    let tkn = tokens.next().cloned();
    if tokens.next().is_some() {
        return Err(SecurIdError::SdtidMultipleTokens);
    }
    let header = header.ok_or_else(|| SecurIdError::SdtidMissing("TKNHeader".into()))?;
    let tkn = tkn.ok_or_else(|| SecurIdError::SdtidMissing("TKN".into()))?;
    if !trailer_present {
        return Err(SecurIdError::SdtidMissing("TKNTrailer".into()));
    }
    let doc = Sdtid { header, tkn };

    let sn = doc.lookup("SN").unwrap_or_default();
    if sn.is_empty() || sn.len() > 12 {
        return Err(SecurIdError::SdtidMissing("SN".into()));
    }
    // Hardware token files drop leading zeroes from the serial number.
    let mut serial = [b'0'; 12];
    serial[12 - sn.len()..].copy_from_slice(sn.as_bytes());

    let mut flags = 0u16;
    if doc.lookup_int("TimeDerivedSeeds", 0)? != 0 {
        flags |= FL_TIMESEEDS;
    }
    if doc.lookup_int("AppDerivedSeeds", 0)? != 0 {
        flags |= FL_APPSEEDS;
    }
    if doc.lookup_int("Mode", 0)? != 0 {
        flags |= FL_FEAT4;
    }
    if doc.lookup_int("Alg", 0)? != 0 {
        flags |= FL_128BIT;
    }
    let add_pin = u16::from(doc.lookup_int("AddPIN", 0)? != 0);
    let local_pin = u16::from(doc.lookup_int("LocalPIN", 0)? != 0);
    flags |= ((add_pin << 1) | local_pin) << PINMODE_SHIFT;
    // stoken keeps only 3 bits of (digits - 1) and treats anything but 60 s as 30 s.
    let digits = doc.lookup_int("Digits", 6)? as i32;
    flags |= ((digits.wrapping_sub(1) as u16) << DIGIT_SHIFT) & DIGIT_MASK;
    if doc.lookup_int("Interval", 60)? as i32 == 60 {
        flags |= 1;
    }
    let exp_date = doc
        .lookup("Death")
        .and_then(|d| parse_death_date(&d))
        .filter(|&d| d != 0)
        .ok_or(SecurIdError::SdtidValue {
            node: "Death",
            reason: "missing or not a YYYY/MM/DD date after 2000/01/01".into(),
        })?;

    let seed = match doc.decrypt(None) {
        Ok(seed) => Some(seed),
        Err(DecryptFailure::BothMacs) => {
            flags |= super::ctf::FL_PASSPROT;
            None
        }
        Err(DecryptFailure::Error(e)) => return Err(e),
    };
    Ok(SdtidToken {
        doc,
        serial,
        flags,
        exp_date,
        seed,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strtol_like_parsing() {
        assert_eq!(parse_c_long("8"), Some(8));
        assert_eq!(parse_c_long("  -12"), Some(-12));
        assert_eq!(parse_c_long("0x1f"), Some(31));
        assert_eq!(parse_c_long("010"), Some(8));
        assert_eq!(parse_c_long("0"), Some(0));
        assert_eq!(parse_c_long("08"), None);
        assert_eq!(parse_c_long("8 "), None);
        assert_eq!(parse_c_long(""), None);
        assert_eq!(parse_c_long("-"), None);
        assert_eq!(parse_c_long("0x"), None);
        assert_eq!(parse_c_long("99999999999999999999999"), Some(i64::MAX));
    }

    #[test]
    fn death_dates() {
        assert_eq!(parse_death_date("2000/01/02"), Some(1));
        assert_eq!(parse_death_date("2038/01/18"), Some(13_897));
        assert_eq!(parse_death_date("2000/13/01"), Some(366));
        assert_eq!(parse_death_date("2000/01/01"), Some(0));
        assert_eq!(parse_death_date("2000-01-01"), None);
        assert_eq!(parse_death_date(""), None);
    }

    #[test]
    fn xml_tree_and_lookup_order() {
        let root = parse_document(
            "<?xml version=\"1.0\"?><A><B><C>x&amp;y</C></B><C>z</C><D><![CDATA[q]]></D></A>",
        )
        .unwrap();
        assert_eq!(root.name, "A");
        assert_eq!(root.find("C").unwrap().content(), "x&y");
        assert_eq!(root.find("D").unwrap().content(), "q");
        assert_eq!(root.content(), "x&yzq");
    }

    #[test]
    fn malformed_xml_is_an_error() {
        for bad in [
            "<?xml version=\"1.0\"?><A><B></A>",
            "<?xml version=\"1.0\"?><A>",
            "<?xml version=\"1.0\"?><A></A><B></B>",
            "<?xml version=\"1.0\"?>junk<A></A>",
            "<?xml version=\"1.0\"?><A>&nope;</A>",
            "<?xml version=\"1.0\"?><A b=></A>",
            "<?xml version=\"1.0\"?>",
        ] {
            assert!(
                matches!(parse_document(bad), Err(SecurIdError::Xml(_))),
                "{bad}"
            );
        }
    }
}
