//! The access policy's pages: the logon form (with the `domain` select), the second
//! factor's form, each as HTML or script-built (`--json-login`), and the posts that walk
//! a policy session to a login.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ferroconnect_interop::gateway::{describe_form, field, html_escape, parse_form, redirect};
use oc_proto::http::server::ServerResponse;

use super::json_page::script_built_page;
use super::{html, Config, Gateway, Stage, MAX_OTP_TRIES, OTP_FIELD, SESSION_SECONDS};

/// `MRHSession` and `LastMRH_Session` (the session's last 8 characters, as an APM sends).
pub fn with_session_cookies(response: ServerResponse, mrh: &str) -> ServerResponse {
    let last = mrh.get(mrh.len().saturating_sub(8)..).unwrap_or(mrh);
    response
        .header(
            "Set-Cookie",
            format!("LastMRH_Session={last}; path=/; secure"),
        )
        .header("Set-Cookie", format!("MRHSession={mrh}; path=/; secure"))
}

/// The logon page: `error` goes in the post-header cell (or, script-built, is the title).
pub fn logon_page(config: &Config, error: Option<&str>) -> ServerResponse {
    if config.json_login {
        let title = error.unwrap_or(&config.banner);
        let fields = [
            ("text", "username", "Username"),
            ("password", "password", "Password"),
        ];
        return script_built_page(title, &fields);
    }
    let domain = match config.domains.is_empty() {
        true => String::new(),
        false => {
            let options: String = config
                .domains
                .iter()
                .map(|d| {
                    let d = html_escape(d);
                    format!("<option value=\"{d}\">{d}</option>")
                })
                .collect();
            format!(
                "<tr><td class=\"credentials_table_label_cell\">Domain</td>\
                 <td class=\"credentials_table_field\"><select name=\"domain\">{options}</select>\
                 </td></tr>\n"
            )
        }
    };
    let body = format!(
        "<form id=\"auth_form\" name=\"e1\" method=\"post\" action=\"/my.policy\" \
         autocomplete=\"off\">\n\
         <table id=\"credentials_table\">\n\
         <tr><td colspan=\"2\" id=\"credentials_table_header\">{banner}</td></tr>\n\
         <tr><td colspan=\"2\" id=\"credentials_table_postheader\">{error}</td></tr>\n\
         <tr><td class=\"credentials_table_label_cell\">Username</td>\
         <td class=\"credentials_table_field\"><input type=\"text\" name=\"username\" \
         value=\"\" autocapitalize=\"off\"></td></tr>\n\
         <tr><td class=\"credentials_table_label_cell\">Password</td>\
         <td class=\"credentials_table_field\"><input type=\"password\" name=\"password\" \
         value=\"\"></td></tr>\n\
         {domain}\
         <tr><td colspan=\"2\"><input type=\"submit\" class=\"credentials_input_submit\" \
         value=\"Logon\"></td></tr>\n\
         </table>\n\
         <input type=\"hidden\" name=\"vhost\" value=\"standard\">\n\
         </form>",
        banner = html_escape(&config.banner),
        error = html_escape(error.unwrap_or_default()),
    );
    html(200, "OK", "Logon", &body)
}

/// The second factor's form: one password field, the prompt (or `error`) in the
/// post-header cell (or, script-built, as the title).
pub fn code_page(config: &Config, error: Option<&str>) -> ServerResponse {
    let prompt = error.unwrap_or("Enter the code from your token");
    if config.json_login {
        return script_built_page(prompt, &[("password", OTP_FIELD, "Code")]);
    }
    let body = format!(
        "<form id=\"auth_form\" name=\"e1\" method=\"post\" action=\"/my.policy\" \
         autocomplete=\"off\">\n\
         <table id=\"credentials_table\">\n\
         <tr><td colspan=\"2\" id=\"credentials_table_header\">Second factor</td></tr>\n\
         <tr><td colspan=\"2\" id=\"credentials_table_postheader\">{prompt}</td></tr>\n\
         <tr><td class=\"credentials_table_label_cell\">Code</td>\
         <td class=\"credentials_table_field\"><input type=\"password\" name=\"{OTP_FIELD}\" \
         value=\"\"></td></tr>\n\
         <tr><td colspan=\"2\"><input type=\"submit\" class=\"credentials_input_submit\" \
         value=\"Logon\"></td></tr>\n\
         </table>\n\
         <input type=\"hidden\" name=\"vhost\" value=\"standard\">\n\
         </form>",
        prompt = html_escape(prompt),
    );
    html(200, "OK", "Logon", &body)
}

/// `POST /my.policy`: the step the policy session `mrh` is at.
pub fn policy_post(
    gateway: &Gateway,
    peer: SocketAddr,
    mrh: Option<&str>,
    body: &[u8],
) -> ServerResponse {
    let form = parse_form(body);
    log!(
        "{peer}: policy form: {}",
        describe_form(&form, &["password", OTP_FIELD])
    );
    let config = &gateway.config;
    let (Some(mrh), Some(stage)) = (mrh, gateway.stage(mrh)) else {
        let fresh = gateway.start_policy();
        log!("{peer}: no policy session for this post; a new one started");
        let page = logon_page(config, Some("Your session could not be established."));
        return with_session_cookies(page, &fresh);
    };
    match stage {
        Stage::Password => password_step(gateway, peer, mrh, &form),
        Stage::Code { user, wrong } => code_step(gateway, peer, mrh, &form, &user, wrong),
    }
}

fn password_step(
    gateway: &Gateway,
    peer: SocketAddr,
    mrh: &str,
    form: &[(String, String)],
) -> ServerResponse {
    let config = &gateway.config;
    let user = field(form, "username").unwrap_or_default();
    let domain = field(form, "domain");
    let domain_ok =
        config.domains.is_empty() || domain.is_some_and(|d| config.domains.iter().any(|c| c == d));
    if !domain_ok {
        log!("{peer}: login refused for user {user:?}: domain {domain:?} is not offered");
        return logon_page(config, Some("The domain is not valid."));
    }
    if user != config.common.user || field(form, "password") != Some(&config.common.password) {
        log!("{peer}: login refused for user {user:?}: wrong credentials");
        return logon_page(
            config,
            Some("The username or password is not correct. Please try again."),
        );
    }
    if config.common.otp.is_some() {
        gateway.set_stage(
            mrh,
            Stage::Code {
                user: user.to_string(),
                wrong: 0,
            },
        );
        log!("{peer}: password accepted for user {user:?} (domain {domain:?}); code form sent");
        return code_page(config, None);
    }
    log!("{peer}: login accepted for user {user:?} (domain {domain:?})");
    logged_in(gateway, mrh, user)
}

fn code_step(
    gateway: &Gateway,
    peer: SocketAddr,
    mrh: &str,
    form: &[(String, String)],
    user: &str,
    wrong: u8,
) -> ServerResponse {
    let code = field(form, OTP_FIELD);
    if code.is_some() && code == gateway.config.common.otp.as_deref() {
        log!("{peer}: code accepted for user {user:?}");
        return logged_in(gateway, mrh, user);
    }
    let wrong = wrong.saturating_add(1);
    log!("{peer}: code refused for user {user:?}: wrong code ({wrong} of {MAX_OTP_TRIES})");
    if wrong >= MAX_OTP_TRIES {
        gateway.end_policy(mrh);
        let fresh = gateway.start_policy();
        log!("{peer}: too many wrong codes; the policy session ended");
        let page = logon_page(&gateway.config, Some("Access was denied."));
        return with_session_cookies(page, &fresh);
    }
    gateway.set_stage(
        mrh,
        Stage::Code {
            user: user.to_string(),
            wrong,
        },
    );
    code_page(
        &gateway.config,
        Some("The code is not correct. Please try again."),
    )
}

/// The login's cookies (`MRHSession`, `LastMRH_Session`, `F5_ST`) and the way to the
/// webtop.
fn logged_in(gateway: &Gateway, pre: &str, user: &str) -> ServerResponse {
    let mrh = gateway.log_in(pre, user);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let response = redirect("/vdesk/webtop.eui?webtop=/Common/webtop&webtop_type=webtop_full");
    with_session_cookies(response, &mrh).header(
        "Set-Cookie",
        format!("F5_ST=1z1z1z{now}z{SESSION_SECONDS}; path=/; secure"),
    )
}
