//! The login conversation with `auth = radius`: each answer goes to the RADIUS server
//! (through the security module); an Access-Challenge becomes a form with its
//! Reply-Message, a reject before any challenge allows ocserv's three tries.

use oc_proto::anyconnect::server_auth::ClientAuth;
use oc_proto::ipc::RadiusVerdict;

use super::{password_input, AuthStep, Conversation, FormSettings, PASSWORD_MESSAGE};
use crate::config::RadiusMethod;

impl Conversation {
    /// A post while the RADIUS method is chosen and `user` is known.
    pub(super) fn radius_post(
        &mut self,
        radius: &RadiusMethod,
        user: String,
        msg: &ClientAuth,
        forms: &FormSettings,
    ) -> AuthStep {
        let Some(answer) = msg.password.clone() else {
            // Nothing to send yet: the question again.
            return AuthStep::Form(match &self.radius_challenge {
                Some((_, message, n)) => self.prompt_form(forms, message, false, *n),
                None => self.form(forms, PASSWORD_MESSAGE, password_input()),
            });
        };
        AuthStep::RadiusCheck {
            config: radius.config.clone(),
            user,
            answer,
            challenge: self.radius_challenge.as_ref().map(|(id, _, _)| *id),
        }
    }

    /// The RADIUS server's verdict on the last answer.
    pub fn radius_verdict(&mut self, verdict: &RadiusVerdict, forms: &FormSettings) -> AuthStep {
        let answered = self.radius_challenge.take();
        match verdict {
            RadiusVerdict::Accepted { groups, .. } => {
                if groups.is_empty() {
                    // No Class: nothing to check a requested group against; as ocserv,
                    // none is applied.
                    self.group = None;
                }
                self.finish(groups.clone())
            }
            RadiusVerdict::Challenge { id, message } => {
                // The same question again: the answer was wrong (ocserv counts it so).
                let n = match answered {
                    Some((_, last, n)) if last == *message => {
                        self.answer_refused = true;
                        n
                    }
                    Some((_, _, n)) => n + 1,
                    None => 1,
                };
                let form = self.prompt_form(forms, message, false, n);
                self.radius_challenge = Some((*id, message.clone(), n));
                AuthStep::Form(form)
            }
            RadiusVerdict::Rejected { retry: true, .. } => self.wrong_password(forms),
            RadiusVerdict::Rejected { retry: false, .. } => AuthStep::Failed {
                reason: "Authentication failed",
            },
        }
    }
}
