//! The login on an upgraded connection: version, client information, identity, then the
//! requests this gateway's options ask (realm, banner, password, token) and the cookie; or
//! a cookie the client presents.

use ferroconnect_interop::gateway::random_hex;
use oc_proto::pulse::eap::{
    expanded, push_avp, Eap, AVP_BANNER, AVP_BANNER_ACK, AVP_COOKIE, AVP_FAILURE, AVP_OS,
    AVP_REALM, AVP_REALM_CHOICE, AVP_USER_AGENT, EAP_REQUEST, EAP_RESPONSE, EAP_TYPE_IDENTITY,
    J2_PASSWORD, J2_RETRY, JUNIPER_1,
};
use oc_proto::pulse::ift::{JUNIPER_CLIENT_INFO, TCG_VERSION_REQUEST, VENDOR_JUNIPER, VENDOR_TCG};
use oc_proto::pulse::server::{self, Answer};

use super::tunnel::Link;

/// Wrong passwords taken before the login is refused.
const PASSWORD_TRIES: usize = 3;
/// AVP 0xd60's code for a refusal (upstream prints other codes as they are).
const REFUSED: u32 = 0x01;

impl Link<'_> {
    /// The login: the session's cookie, or why there is none.
    pub async fn login(&mut self) -> Result<String, String> {
        let version = self.next().await?;
        if !version.is(VENDOR_TCG, TCG_VERSION_REQUEST) {
            return Err(format!("expected the version request, got {version:?}"));
        }
        self.send(&server::version_response()).await?;
        let info = self.next().await?;
        if !info.is(VENDOR_JUNIPER, JUNIPER_CLIENT_INFO) {
            return Err(format!("expected the client's information, got {info:?}"));
        }
        log!(
            "{}: client information {:?}",
            self.peer,
            String::from_utf8_lossy(&info.payload).trim_end_matches(['\0', '\n'])
        );
        self.send(&server::auth_start()).await?;
        let identity = self.next().await?;
        let eap = server::response(&identity.packet()).map_err(|e| e.to_string())?;
        if eap.kind != Some(EAP_TYPE_IDENTITY) {
            return Err("the first answer is not an EAP identity".into());
        }
        let certificate = match self.gw.config.ttls.clone() {
            Some(options) => self.start_ttls(&options).await?,
            None => None,
        };
        let first = self.ask(&[]).await?;
        log!(
            "{}: client OS {:?}, user agent {:?}",
            self.peer,
            first.text(AVP_OS),
            first.text(AVP_USER_AGENT)
        );
        if let Some(cookie) = first.text(AVP_COOKIE) {
            return self.resume(&cookie).await;
        }
        self.choose_realm().await?;
        self.show_banner().await?;
        self.check_certificate_or_password(certificate.as_deref())
            .await?;
        self.check_token().await?;
        let cookie = random_hex::<16>();
        self.gw.add_session(&cookie);
        self.grant(&cookie).await?;
        log!("{}: session started", self.peer);
        Ok(cookie)
    }

    /// A Juniper/1 request with `avps`; the client's answer.
    async fn ask(&mut self, avps: &[u8]) -> Result<Answer, String> {
        self.eap_id = self.eap_id.wrapping_add(1);
        if self.ttls.is_some() {
            let request = expanded(EAP_REQUEST, self.eap_id, JUNIPER_1, avps);
            let inside = self.ask_inside(&request).await?;
            let eap = Eap::parse(&inside).map_err(|e| e.to_string())?;
            if eap.code != EAP_RESPONSE || eap.expanded != Some(JUNIPER_1) {
                return Err("the answer inside EAP-TTLS is no Juniper/1 response".into());
            }
            return Answer::parse(eap.data).map_err(|e| e.to_string());
        }
        self.send(&server::request(self.eap_id, avps)).await?;
        let reply = self.next().await?;
        let eap = server::response(&reply.packet()).map_err(|e| e.to_string())?;
        Answer::parse(eap.data).map_err(|e| e.to_string())
    }

    /// The cookie, then success after the client's empty answer.
    async fn grant(&mut self, cookie: &str) -> Result<(), String> {
        let mut avps = Vec::new();
        push_avp(&mut avps, AVP_COOKIE, cookie.as_bytes());
        let last = self.ask(&avps).await?;
        if last != Answer::default() {
            log!(
                "{}: the answer to the cookie is not empty: {last:?}",
                self.peer
            );
        }
        self.send(&server::success(self.eap_id)).await
    }

    /// A presented cookie: the session again, or (unknown) a password request, which the
    /// client takes as the cookie's end.
    async fn resume(&mut self, cookie: &str) -> Result<String, String> {
        if self.gw.knows(cookie) {
            log!("{}: the client's cookie resumes its session", self.peer);
            self.grant(cookie).await?;
            return Ok(cookie.to_string());
        }
        log!("{}: unknown cookie; asking for the password", self.peer);
        let _ = self
            .ask(&server::password_request(0, J2_PASSWORD, false))
            .await;
        Err("the client's cookie was unknown".into())
    }

    async fn choose_realm(&mut self) -> Result<(), String> {
        if self.gw.config.realms.is_empty() {
            return Ok(());
        }
        let mut avps = Vec::new();
        for realm in &self.gw.config.realms {
            push_avp(&mut avps, AVP_REALM_CHOICE, realm.as_bytes());
        }
        let answer = self.ask(&avps).await?;
        let realm = answer.text(AVP_REALM).unwrap_or_default();
        if !self.gw.config.realms.contains(&realm) {
            return self.refuse(&format!("unknown realm {realm:?}")).await;
        }
        log!("{}: realm {realm:?} chosen", self.peer);
        Ok(())
    }

    async fn show_banner(&mut self) -> Result<(), String> {
        let Some(banner) = self.gw.config.banner.clone() else {
            return Ok(());
        };
        let mut avps = Vec::new();
        push_avp(&mut avps, AVP_BANNER, banner.as_bytes());
        let answer = self.ask(&avps).await?;
        if answer
            .values
            .iter()
            .any(|(code, _)| *code == AVP_BANNER_ACK)
        {
            log!("{}: banner acknowledged", self.peer);
            Ok(())
        } else {
            self.refuse("the banner was not acknowledged").await
        }
    }

    /// A client certificate (asked for with `--ttls-client-ca`; `cn` its common name) logs
    /// in when it names the user; without one, the password.
    async fn check_certificate_or_password(&mut self, cn: Option<&str>) -> Result<(), String> {
        let Some(cn) = cn else {
            return self.check_password().await;
        };
        if cn != self.gw.config.common.user {
            return self.refuse(&format!("a certificate for {cn:?}")).await;
        }
        log!("{}: certificate login for {cn:?}", self.peer);
        Ok(())
    }

    async fn check_password(&mut self) -> Result<(), String> {
        let common = &self.gw.config.common;
        let (user, password) = (common.user.clone(), common.password.clone());
        let juniper5 = self.gw.config.juniper5;
        let mut code = J2_PASSWORD;
        for _ in 0..PASSWORD_TRIES {
            let request = server::password_request(1, code, juniper5);
            let answer = self.ask(&request).await?;
            let given = answer.password.as_ref().map(|(p, _)| p.as_str());
            // Juniper/5 carries 18 bytes of the password.
            let expected = if juniper5 {
                password.get(..18).unwrap_or(&password)
            } else {
                &password
            };
            if answer.username.as_deref() == Some(&user) && given == Some(expected) {
                let kind = if juniper5 { "Juniper/5" } else { "Juniper/2" };
                log!("{}: password accepted for {user:?} ({kind})", self.peer);
                return Ok(());
            }
            log!(
                "{}: wrong username or password (user {:?})",
                self.peer,
                answer.username
            );
            code = J2_RETRY;
        }
        self.refuse("too many wrong passwords").await
    }

    async fn check_token(&mut self) -> Result<(), String> {
        let Some(otp) = self.gw.config.common.otp.clone() else {
            return Ok(());
        };
        let answer = self
            .ask(&server::token_request(2, "Enter SecurID PASSCODE"))
            .await?;
        if answer.token.as_deref() == Some(otp.as_str()) {
            log!("{}: token code accepted", self.peer);
            Ok(())
        } else {
            self.refuse("wrong token code").await
        }
    }

    /// AVP 0xd60: the login is refused.
    async fn refuse(&mut self, why: &str) -> Result<(), String> {
        log!("{}: login refused: {why}", self.peer);
        let mut avps = Vec::new();
        push_avp(&mut avps, AVP_FAILURE, &REFUSED.to_be_bytes());
        self.eap_id = self.eap_id.wrapping_add(1);
        let request = expanded(EAP_REQUEST, self.eap_id, JUNIPER_1, &avps);
        let message = match self.ttls.as_mut() {
            Some(link) => {
                link.send_eap(&request).map_err(|e| e.to_string())?;
                server::ttls_request(self.eap_id, &link.flush())
            }
            None => server::challenge(&request),
        };
        self.send(&message).await?;
        Err(format!("login refused: {why}"))
    }
}
