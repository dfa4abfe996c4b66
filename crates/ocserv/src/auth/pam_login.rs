//! The login conversation with `auth = pam`: the security module runs the PAM stack and
//! each of its prompts becomes a form, as ocserv shows them. The password typed into the
//! first form (user name and password together) answers PAM's first prompt, so a plain
//! password login takes one round trip as with password files.

use oc_proto::anyconnect::server_auth::ClientAuth;
use oc_proto::ipc::PamEvent;

use super::{AuthStep, Conversation, FormSettings};
use crate::config::PamMethod;

/// How far the PAM conversation is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum PamProgress {
    #[default]
    NotStarted,
    /// Started or answered; the next event is due. `first_answer`: the password of the
    /// first form, for PAM's first prompt.
    Pending {
        first_answer: Option<String>,
    },
    /// A prompt is shown; the client's next post answers it.
    Asked {
        id: u64,
        message: String,
        echo: bool,
        /// Distinct prompts so far (ocserv names the second and later fields
        /// `secondary_password`, where token clients put their codes).
        distinct: u32,
    },
    Ended,
}

impl Conversation {
    /// A post while the PAM method is chosen and `user` is known.
    pub(super) fn pam_post(
        &mut self,
        pam: &PamMethod,
        user: String,
        msg: &ClientAuth,
        forms: &FormSettings,
    ) -> AuthStep {
        match std::mem::replace(&mut self.pam_progress, PamProgress::Ended) {
            PamProgress::NotStarted => {
                self.pam_progress = PamProgress::Pending {
                    first_answer: msg.password.clone(),
                };
                AuthStep::PamStart {
                    service: pam.service.clone(),
                    user,
                }
            }
            PamProgress::Asked {
                id,
                message,
                echo,
                distinct,
            } => match msg.password.clone() {
                Some(answer) => {
                    self.pam_progress = PamProgress::Pending { first_answer: None };
                    AuthStep::PamAnswer { id, answer }
                }
                // A post without the answer: the same question again.
                None => {
                    let form = self.prompt_form(forms, &message, echo, distinct);
                    self.pam_progress = PamProgress::Asked {
                        id,
                        message,
                        echo,
                        distinct,
                    };
                    AuthStep::Form(form)
                }
            },
            PamProgress::Pending { .. } | PamProgress::Ended => AuthStep::Failed {
                reason: "Authentication failed",
            },
        }
    }

    /// The PAM conversation waiting for this client's answer, if any (to end it when the
    /// client goes away).
    pub fn pam_waiting(&self) -> Option<u64> {
        match self.pam_progress {
            PamProgress::Asked { id, .. } => Some(id),
            _ => None,
        }
    }

    /// What the security module's PAM conversation did after a start or an answer.
    pub fn pam_event(&mut self, event: &PamEvent, forms: &FormSettings) -> AuthStep {
        let first_answer = match std::mem::replace(&mut self.pam_progress, PamProgress::Ended) {
            PamProgress::Pending { first_answer } => first_answer,
            _ => {
                return AuthStep::Failed {
                    reason: "Authentication failed",
                }
            }
        };
        match event {
            PamEvent::Prompt { id, message, echo } => {
                let distinct = match &self.pam_last_prompt {
                    Some((last, n)) if last == message => {
                        self.answer_refused = true;
                        *n
                    }
                    Some((_, n)) => n + 1,
                    None => 0,
                };
                self.pam_last_prompt = Some((message.clone(), distinct));
                if let Some(answer) = first_answer {
                    self.pam_progress = PamProgress::Pending { first_answer: None };
                    return AuthStep::PamAnswer { id: *id, answer };
                }
                let form = self.prompt_form(forms, message, *echo, distinct);
                self.pam_progress = PamProgress::Asked {
                    id: *id,
                    message: message.clone(),
                    echo: *echo,
                    distinct,
                };
                AuthStep::Form(form)
            }
            PamEvent::Accepted { user, groups, .. } => {
                self.username = Some(user.clone());
                match groups {
                    Some(groups) => self.finish(groups.clone()),
                    // Not a Unix user (an LDAP or RADIUS one behind PAM): no groups to
                    // check a requested one against; as ocserv, none is applied.
                    None => {
                        self.group = None;
                        self.finish(Vec::new())
                    }
                }
            }
            PamEvent::Rejected { .. } => AuthStep::Failed {
                reason: "Authentication failed",
            },
        }
    }
}
