//! The security module's channels are a boundary too: the real `ocserv --internal-role
//! secmod` process, fed an empty frame, an oversized frame and garbage on some channels,
//! closes just those channels and goes on answering on the others; it checks only the
//! password files the configuration names, signs only with keys it has, and ends when the
//! main process goes away.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oc_proto::ipc::{
    CommandReply, CookieRefusal, Granted, KeyRef, PasswordVerdict, SecModCommand, SecModReply,
    SecModRequest, SessionReply, SessionRequest, SignOp, MAX_FRAME,
};
use ocserv::channel::Channel;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509};

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fc-secmod-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed server certificate and its key.
fn write_pki(dir: &Path) -> (PathBuf, PathBuf) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "vpn.test").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let (cert, key_path) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert, b.build().to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (cert, key_path)
}

fn write_passwd(path: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ocpasswd"))
        .arg("-c")
        .arg(path)
        .arg("alice")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    write!(child.stdin.take().unwrap(), "secret\nsecret\n").unwrap();
    assert!(child.wait().unwrap().success());
}

fn start_secmod(config: &Path) -> (Child, Channel) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ocserv"))
        .args(["-f", "--internal-role", "secmod", "-c"])
        .arg(config)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let control = Channel::new(ours, "security module");
    control.set_timeout(Some(Duration::from_secs(10))).unwrap();
    (child, control)
}

/// Reads until the peer closes the stream (true) or `limit` passes (false).
fn closed_within(stream: &mut UnixStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0))
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn hostile_frames_close_only_their_channel() {
    let dir = temp_dir();
    let (cert, key) = write_pki(&dir);
    let passwd = dir.join("passwd");
    write_passwd(&passwd);
    let config = dir.join("ocserv.conf");
    std::fs::write(
        &config,
        format!(
            "auth = \"plain[passwd={}]\"\ntcp-port = 4443\nserver-cert = {}\nserver-key = {}\n\
             ipv4-network = 198.19.0.0/24\n",
            passwd.display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let (mut child, mut control) = start_secmod(&config);
    let reply: CommandReply = control
        .call(&SecModCommand::Reload { generation: 1 }, &[])
        .unwrap();
    assert_eq!(reply, CommandReply::Done);

    // Four channels for a pretend network process.
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..4).map(|_| UnixStream::pair().unwrap()).collect();
    let theirs: Vec<_> = pairs.iter().map(|(_, t)| t.as_fd()).collect();
    control.send(&SecModCommand::Serve, &theirs).unwrap();
    assert_eq!(
        control.recv::<CommandReply>().unwrap().msg,
        CommandReply::Done
    );
    let mut ends: Vec<UnixStream> = pairs.into_iter().map(|(ours, _)| ours).collect();
    let good = ends.pop().unwrap();

    // The empty message, the largest length plus one, and garbage: each closes its channel.
    let too_long = u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes();
    let hostile: [&[u8]; 3] = [&[0, 0, 0, 0], &too_long, &[0, 0, 0, 3, 1, 0xff, 0xff]];
    for (stream, bytes) in ends.iter_mut().zip(hostile) {
        stream.write_all(bytes).unwrap();
        assert!(
            closed_within(stream, Duration::from_secs(5)),
            "{bytes:?} did not close the channel"
        );
    }

    // The other channel still serves, and only what the configuration allows.
    let mut channel = Channel::new(good, "security module");
    channel.set_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut ask = |request: SecModRequest| -> SecModReply { channel.call(&request, &[]).unwrap() };
    let check = |passwd: &Path, password: &str| SecModRequest::CheckPassword {
        passwd: passwd.display().to_string(),
        user: "alice".into(),
        password: password.into(),
        vhost: None,
    };
    let SecModReply::Password {
        verdict: PasswordVerdict::Accepted { groups },
        ticket: Some(ticket),
    } = ask(check(&passwd, "secret"))
    else {
        panic!("the right password was not accepted with a ticket");
    };
    assert!(groups.is_empty());
    assert_eq!(
        ask(check(&passwd, "wrong")),
        SecModReply::Password {
            verdict: PasswordVerdict::Rejected,
            ticket: None
        }
    );
    // A session only with the ticket of a completed check, once, for its user.
    // What the network process claims was granted is never taken.
    let forged = Granted {
        ipv4: Some(std::net::Ipv4Addr::new(10, 9, 9, 9)),
        ..Granted::default()
    };
    let create = |user: &str, ticket| {
        SecModRequest::Session(SessionRequest::Create {
            user: user.into(),
            group: None,
            timeout: None,
            ticket,
            login_ip: None,
            vhost: None,
            granted: Some(Box::new(forged.clone())),
        })
    };
    let refused = |reply: SecModReply| {
        matches!(
            reply,
            SecModReply::Session(SessionReply::Refused(CookieRefusal::Unavailable(_)))
        )
    };
    assert!(refused(ask(create("alice", None))));
    assert!(refused(ask(create("mallory", Some(ticket)))));
    let SecModReply::Password {
        ticket: Some(ticket),
        ..
    } = ask(check(&passwd, "secret"))
    else {
        panic!("no ticket");
    };
    let SecModReply::Session(SessionReply::Created { cookie }) = ask(create("alice", Some(ticket)))
    else {
        panic!("no session");
    };
    let lookup = SecModRequest::Session(SessionRequest::Lookup {
        cookie,
        vhost: None,
    });
    let SecModReply::Session(SessionReply::Found(view)) = ask(lookup) else {
        panic!("the session is not found");
    };
    assert_eq!(
        view.granted, None,
        "a grant the network process made up was kept"
    );
    assert!(refused(ask(create("alice", Some(ticket)))));
    assert!(matches!(
        ask(check(Path::new("/etc/shadow"), "x")),
        SecModReply::Refused(_)
    ));
    let sign = |generation, index| SecModRequest::Sign {
        key: KeyRef { generation, index },
        op: SignOp::Ecdsa {
            digest: vec![1; 32],
        },
    };
    // No key of that generation, no such key, and an RSA key asked for ECDSA.
    for request in [sign(9, 0), sign(1, 5), sign(1, 0)] {
        assert!(matches!(ask(request), SecModReply::Refused(_)));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the security module died"
    );

    // The main process gone: the security module ends.
    drop(control);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(
        status.is_some(),
        "the security module outlived the main process"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
