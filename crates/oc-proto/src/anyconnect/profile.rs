//! AnyConnect XML profiles (`-x`): the `ServerList` that maps a host's display name to its
//! address and user group, and the manifest by which a server offers a newer profile
//! after the login (`<vpn-profile-manifest>`), as openconnect reads them.

use quick_xml::events::Event;
use quick_xml::Reader;
use thiserror::Error;

/// Profiles larger than this are refused (AnyConnect's are a few kilobytes).
pub const MAX_PROFILE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("the profile is not XML: {0}")]
    NotXml(String),
    #[error("the profile is larger than {MAX_PROFILE_BYTES} bytes")]
    TooLarge,
}

/// One `<HostEntry>` of the `<ServerList>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostEntry {
    /// `<HostName>`: what users type (or pick) as the server.
    pub name: String,
    /// `<HostAddress>`: where it is, a server URL.
    pub address: Option<String>,
    /// `<UserGroup>`: the group path to log in to.
    pub user_group: Option<String>,
}

/// A newer profile the server offers: where to GET it and its SHA-1 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileManifest {
    pub uri: String,
    pub sha1: String,
}

/// The host entries of a profile, in order. Element names are matched without their
/// namespace prefix; text is trimmed.
pub fn host_entries(xml: &[u8]) -> Result<Vec<HostEntry>, ProfileError> {
    if xml.len() > MAX_PROFILE_BYTES {
        return Err(ProfileError::TooLarge);
    }
    let text = std::str::from_utf8(xml).map_err(|e| ProfileError::NotXml(e.to_string()))?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    let mut content = String::new();
    let mut seen_root = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| ProfileError::NotXml(e.to_string()))?;
        match event {
            Event::Start(start) => {
                seen_root = true;
                let name = start.local_name().as_ref().to_string();
                if name == "HostEntry" && parent_is(&stack, "ServerList") {
                    entries.push(HostEntry::default());
                }
                stack.push(name);
                content.clear();
            }
            Event::Empty(_) => seen_root = true,
            Event::Text(t) => content.push_str(&t.xml10_content()),
            Event::CData(c) => content.push_str(&c.xml10_content()),
            Event::GeneralRef(r) => super::auth::push_reference(&mut content, &r),
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                if parent_is(&stack, "HostEntry") {
                    if let Some(entry) = entries.last_mut() {
                        let value = content.trim().to_string();
                        match name.as_str() {
                            "HostName" => entry.name = value,
                            "HostAddress" => entry.address = Some(value),
                            "UserGroup" => entry.user_group = Some(value),
                            _ => {}
                        }
                    }
                }
                content.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root || !stack.is_empty() {
        return Err(ProfileError::NotXml("no complete root element".into()));
    }
    Ok(entries)
}

/// The entry whose `HostName` is exactly `host`, as openconnect matches it.
pub fn find_host<'a>(entries: &'a [HostEntry], host: &str) -> Option<&'a HostEntry> {
    entries.iter().find(|e| e.name == host)
}

fn parent_is(stack: &[String], name: &str) -> bool {
    stack.last().is_some_and(|p| p == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<AnyConnectProfile xmlns="http://schemas.xmlsoap.org/encoding/">
  <ClientInitialization><UseStartBeforeLogon>false</UseStartBeforeLogon></ClientInitialization>
  <ServerList>
    <HostEntry>
      <HostName> Corporate VPN </HostName>
      <HostAddress>vpn.example.com:8443/corp</HostAddress>
      <UserGroup>engineering</UserGroup>
    </HostEntry>
    <HostEntry><HostName>Lab &amp; Test</HostName><HostAddress>10.0.0.1</HostAddress></HostEntry>
  </ServerList>
</AnyConnectProfile>"#;

    #[test]
    fn host_list_as_openconnect_reads_it() {
        let entries = host_entries(PROFILE.as_bytes()).unwrap();
        assert_eq!(entries.len(), 2);
        let corp = find_host(&entries, "Corporate VPN").unwrap();
        assert_eq!(corp.address.as_deref(), Some("vpn.example.com:8443/corp"));
        assert_eq!(corp.user_group.as_deref(), Some("engineering"));
        let lab = find_host(&entries, "Lab & Test").unwrap();
        assert_eq!(
            (lab.address.as_deref(), lab.user_group.as_deref()),
            (Some("10.0.0.1"), None)
        );
        assert!(find_host(&entries, "corporate vpn").is_none());
    }

    #[test]
    fn what_is_not_a_profile() {
        for bad in ["", "not xml", "<a><b></a>", "<AnyConnectProfile>"] {
            assert!(host_entries(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(host_entries(&[0xff, 0xfe]).is_err());
        assert_eq!(
            host_entries(&vec![b' '; MAX_PROFILE_BYTES + 1]),
            Err(ProfileError::TooLarge)
        );
        // Entries outside a ServerList do not count.
        let stray = "<P><HostEntry><HostName>x</HostName></HostEntry></P>";
        assert_eq!(host_entries(stray.as_bytes()).unwrap(), vec![]);
    }
}
