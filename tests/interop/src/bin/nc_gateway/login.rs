//! The `dana-na` login pages: the host checker's, the login form, token forms, the
//! confirmation, roles, the session's `DSID`, and the logout.

use std::net::SocketAddr;

use ferroconnect_interop::gateway::{
    describe_form, field, html_escape, lock, parse_form, parse_query, random_hex, redirect,
    remember, text,
};
use oc_proto::http::server::{ServerRequest, ServerResponse};

use super::{Gateway, Pending, CHECKED, LOGIN_PAGE, LOGIN_POST, ROLE_PAGE, WEBTOP};

pub fn html(body: &str) -> ServerResponse {
    text(200, "OK", "text/html; charset=utf-8", body)
}

impl Gateway {
    /// The login form, or first the host checker's page.
    pub fn login_page(&self, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
        if self.config.host_checker {
            let given = request.cookie("DSPREAUTH").unwrap_or_default();
            let checked = given.strip_prefix(CHECKED).is_some_and(|issued| {
                let mut state = lock(&self.state);
                let at = state.preauth.iter().position(|p| p == issued);
                at.and_then(|i| state.preauth.remove(i)).is_some()
            });
            if !checked {
                let value = random_hex::<8>();
                log!("{peer}: host checker needed (DSPREAUTH {value}; given {given:?})");
                remember(&mut lock(&self.state).preauth, value.clone());
                return html("<html><body>Waiting for the host checker</body></html>")
                    .header("Set-Cookie", format!("DSPREAUTH={value}; path=/; secure"));
            }
            log!("{peer}: host checker passed");
        }
        let realms: String = self
            .config
            .realms
            .iter()
            .enumerate()
            .map(|(i, r)| format!("<option value=\"{i}\">{}</option>", html_escape(r)))
            .collect();
        let select = if realms.is_empty() {
            String::new()
        } else {
            format!("<select name=\"realm\">{realms}</select>")
        };
        let notice = self.config.notice.as_ref().map_or(String::new(), |n| {
            format!(
                "<textarea name=\"sn-postauth-text\">{}</textarea>\
                 <input type=\"submit\" name=\"sn-postauth-proceed\" value=\"Proceed\"/>",
                html_escape(n)
            )
        });
        log!("{peer}: login form sent");
        html(&format!(
            "<html><body><form name=\"frmLogin\" method=\"post\" action=\"{LOGIN_POST}\">\
             <input type=\"text\" name=\"username\"/>\
             <input type=\"password\" name=\"password\"/>{select}{notice}\
             <input type=\"submit\" value=\"Sign In\" name=\"btnSubmit\"/>\
             </form></body></html>"
        ))
    }

    /// Every post of the login: the password (a new login), then a token code or a
    /// confirmation (a login under way, named by its `key`).
    pub fn login_post(&self, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
        let form = parse_form(&request.body);
        log!(
            "{peer}: login post: {}",
            describe_form(&form, &["password", "token_code"])
        );
        let mut pending = match field(&form, "key") {
            Some(key) => match self.take_pending(key) {
                Some(p) => p,
                None => {
                    log!("{peer}: login step for an unknown key; refused");
                    return self.login_again(peer, "Your session has expired");
                }
            },
            None => match self.check_password(peer, &form) {
                Ok(p) => p,
                Err(why) => return self.login_again(peer, &why),
            },
        };
        if field(&form, "token_code").is_some() {
            if field(&form, "token_code") != self.config.common.otp.as_deref() {
                log!("{peer}: wrong token code");
                return self.login_again(peer, "Invalid token code");
            }
            log!("{peer}: token code accepted");
            pending.token_done = true;
        }
        if field(&form, "btnContinue").is_some() {
            log!("{peer}: login confirmed");
            pending.confirmed = true;
        }
        self.next_step(peer, pending)
    }

    fn check_password(
        &self,
        peer: SocketAddr,
        form: &[(String, String)],
    ) -> Result<Pending, String> {
        let common = &self.config.common;
        let realm_ok = self.config.realms.is_empty()
            || field(form, "realm")
                .and_then(|r| r.parse::<usize>().ok())
                .is_some_and(|r| r < self.config.realms.len());
        let button = field(form, "btnSubmit").is_some();
        let notice = self.config.notice.is_none() || field(form, "sn-postauth-proceed").is_some();
        if field(form, "username") != Some(common.user.as_str())
            || field(form, "password") != Some(common.password.as_str())
            || !realm_ok
            || !button
            || !notice
        {
            log!(
                "{peer}: login refused (user, password, realm {:?}, button {button}, notice \
                 {notice})",
                field(form, "realm")
            );
            return Err("Invalid username or password".into());
        }
        log!(
            "{peer}: password accepted for {:?} in realm {:?}",
            common.user,
            field(form, "realm")
        );
        Ok(Pending {
            key: random_hex::<8>(),
            token_done: self.config.common.otp.is_none(),
            confirmed: !self.config.confirm,
        })
    }

    fn take_pending(&self, key: &str) -> Option<Pending> {
        let mut state = lock(&self.state);
        let at = state.pending.iter().position(|p| p.key == key)?;
        state.pending.remove(at)
    }

    /// The next form of a login under way, or the session.
    fn next_step(&self, peer: SocketAddr, pending: Pending) -> ServerResponse {
        let key = pending.key.clone();
        if !pending.token_done {
            remember(&mut lock(&self.state).pending, pending);
            let form = &self.config.token_form;
            let button = if form == "frmTotpToken" {
                "totpactionEnter"
            } else {
                "btnAction"
            };
            log!("{peer}: token form {form} sent");
            return html(&format!(
                "<html><body><form name=\"{form}\" method=\"post\" action=\"{LOGIN_POST}\">\
                 Enter your token code.<input type=\"hidden\" name=\"key\" value=\"{key}\"/>\
                 <input type=\"password\" name=\"token_code\"/>\
                 <input type=\"submit\" name=\"{button}\" value=\"Sign In\"/></form></body></html>"
            ));
        }
        if !pending.confirmed {
            remember(&mut lock(&self.state).pending, pending);
            log!("{peer}: confirmation form sent");
            return html(&format!(
                "<html><body><form name=\"frmConfirmation\" method=\"post\" \
                 action=\"{LOGIN_POST}\">Confirm your login.\
                 <input type=\"hidden\" name=\"key\" value=\"{key}\"/>\
                 <input type=\"submit\" name=\"btnContinue\" value=\"Continue\"/>\
                 </form></body></html>"
            ));
        }
        if !self.config.roles.is_empty() {
            remember(&mut lock(&self.state).pending, pending);
            let links: String = self
                .config
                .roles
                .iter()
                .enumerate()
                .map(|(i, role)| {
                    format!(
                        "<tr><td><a href=\"{ROLE_PAGE}?role={i}&amp;key={key}\">{}</a></td></tr>",
                        html_escape(role)
                    )
                })
                .collect();
            log!("{peer}: roles sent");
            return html(&format!(
                "<html><body><form name=\"frmSelectRoles\"><table id=\"TABLE_SelectRole_1\">\
                 <tr><td>You have access to the following roles:</td></tr>{links}</table>\
                 </form></body></html>"
            ));
        }
        self.start_session(peer, None)
    }

    /// A role's link: the session, in that role.
    pub fn role_chosen(&self, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
        let query = parse_query(&request.target);
        let role = field(&query, "role")
            .and_then(|r| r.parse::<usize>().ok())
            .and_then(|r| self.config.roles.get(r).cloned());
        let known = field(&query, "key").and_then(|k| self.take_pending(k));
        match (role, known) {
            (Some(role), Some(_)) => self.start_session(peer, Some(&role)),
            _ => {
                log!("{peer}: bad role choice {:?}", request.target);
                self.login_again(peer, "Invalid role")
            }
        }
    }

    fn start_session(&self, peer: SocketAddr, role: Option<&str>) -> ServerResponse {
        let dsid = random_hex::<16>();
        remember(&mut lock(&self.state).sessions, dsid.clone());
        log!("{peer}: session started (role {role:?})");
        redirect(WEBTOP).header("Set-Cookie", format!("DSID={dsid}; path=/; secure"))
    }

    /// Back to the login form, with the reason.
    fn login_again(&self, peer: SocketAddr, why: &str) -> ServerResponse {
        log!("{peer}: back to the login ({why})");
        redirect(&format!("{LOGIN_PAGE}?p=failed"))
    }

    pub fn session_of(&self, request: &ServerRequest) -> Option<String> {
        let dsid = request.cookie("DSID")?;
        lock(&self.state)
            .sessions
            .iter()
            .any(|s| s == dsid)
            .then(|| dsid.to_string())
    }

    pub fn logout(&self, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
        if let Some(dsid) = self.session_of(request) {
            self.forget(&dsid);
            log!("{peer}: logout: session forgotten");
        }
        html("successful logout").header("Set-Cookie", "DSID=; path=/")
    }
}
