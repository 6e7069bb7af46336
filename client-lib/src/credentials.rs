//! Clinician credentials (docs/therapy.md): a clinician presents the
//! credential an issuer signed for its device; a client verifies it
//! against the issuers its app trusts and the relay's key log.
//!
//! The clinician's device sends the credential sealed to each contact and
//! commits only its digest and issuer in the key log, so the relay learns
//! that this device holds a credential, never what it says. A client keeps
//! the credential it was shown and checks, each time the app asks:
//! signature, issuer, subject, expiry, and that the log holds this very
//! credential, unrevoked, under a head that extends every head the device
//! saw before. A revocation seen once is remembered, so a relay cannot
//! take it back later.

use alcove_api::keylog::credential_proof_from_wire;
use alcove_keylog::check_credential;
use alcove_protocol::content::{self, Body};
use alcove_protocol::credential::{Credential, CredentialCommitment, IssuerId};
use alcove_protocol::CredentialError;
use serde::{Deserialize, Serialize};

use crate::error::{CredentialProblem, Error, Result};
use crate::records;
use crate::{Client, Core, DeviceAddress};

/// An issuer the app trusts: its public key and the name shown for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// Shown as "licensed, verified by <name>".
    pub name: String,
    /// The issuer's 32-byte Ed25519 public key.
    pub key: [u8; 32],
}

/// A credential that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCredential {
    /// The clinician's name as the issuer wrote it.
    pub display_name: String,
    /// Licence or registration number.
    pub licence_number: String,
    /// Where the licence holds.
    pub jurisdiction: String,
    /// Seconds since the Unix epoch.
    pub expires_at: u64,
    /// The trusted issuer's name, as the app configured it.
    pub issuer_name: String,
}

impl VerifiedCredential {
    /// What the app shows beside the contact.
    pub fn badge(&self) -> String {
        format!("licensed, verified by {}", self.issuer_name)
    }
}

/// What a client keeps about a contact's credential.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct ContactCredential {
    /// The credential the contact presented last.
    presented: Vec<u8>,
    /// The highest credential epoch seen in the log for the contact.
    epoch_seen: u64,
    /// Revocations seen: digest and from when (seconds).
    revoked: Vec<([u8; 32], u64)>,
}

fn problem(p: CredentialProblem) -> Error {
    Error::Credential(p)
}

impl Client {
    fn contact_credential(&self, address: &[u8; 32]) -> Result<ContactCredential> {
        match self
            .vault
            .get(&self.vault.hashed_name(records::CREDENTIAL, address))?
        {
            Some(v) => records::decode("credential", &v),
            None => Ok(ContactCredential::default()),
        }
    }

    fn contact_credential_record(
        &self,
        address: &[u8; 32],
        value: &ContactCredential,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        Ok((
            self.vault.hashed_name(records::CREDENTIAL, address),
            records::encode(value)?,
        ))
    }

    /// Keeps a credential a contact presented (unverified until the app
    /// asks [`Client::verify_credential`]).
    pub(crate) fn presented_credential(
        &self,
        from: &[u8; 32],
        credential: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut kept = self.contact_credential(from)?;
        kept.presented = credential.to_vec();
        self.contact_credential_record(from, &kept)
    }

    /// Presents this device's clinician credential: checks it (its
    /// signature, that it names this device, that it has not expired),
    /// commits its digest and issuer in the relay's key log, keeps it in
    /// the profile and sends it, sealed, to every contact; new contacts get
    /// it when they accept an invite.
    ///
    /// ```no_run
    /// # async fn f(therapist: alcove_client::Client, credential: Vec<u8>) -> Result<(), alcove_client::Error> {
    /// // `credential` came from the practice (`alcove credential issue`).
    /// therapist.present_credential(&credential).await?;
    /// # Ok(()) }
    /// ```
    pub async fn present_credential(&self, credential: &[u8]) -> Result<()> {
        let parsed = Credential::from_bytes(credential).map_err(|e| match e {
            CredentialError::BadSignature => problem(CredentialProblem::Forged),
            other => Error::InvalidInput(format!("credential: {other}")),
        })?;
        if parsed.claims().subject != self.address() {
            return Err(problem(CredentialProblem::WrongIdentity));
        }
        if parsed.is_expired_at(self.now_secs()) {
            return Err(problem(CredentialProblem::Expired {
                expired_at: parsed.claims().expires_at,
            }));
        }
        self.pin_log_key().await?;
        let proof = self
            .relay
            .commit_credential(parsed.digest(), parsed.issuer().0)
            .await?;
        self.check_credential_proof(&self.address(), &proof, 0)
            .await?;
        let mut core = self.core.lock().await;
        self.vault.commit(
            vec![(records::OWN_CREDENTIAL.to_vec(), credential.to_vec())],
            &[],
        )?;
        let contacts: Vec<[u8; 32]> = core.contacts.keys().copied().collect();
        for to in contacts {
            self.send_presentation(&mut core, &to, credential).await?;
        }
        Ok(())
    }

    /// This device's own credential, as presented.
    pub fn own_credential(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.vault.get(records::OWN_CREDENTIAL)?.map(|v| v.to_vec()))
    }

    async fn send_presentation(
        &self,
        core: &mut Core,
        to: &[u8; 32],
        credential: &[u8],
    ) -> Result<()> {
        let body = Body::CredentialPresentation(content::CredentialPresentation {
            credential: credential.to_vec(),
        });
        match self.send_body(core, to, None, body, false).await {
            Ok(_) | Err(Error::Offline(_)) | Err(Error::Busy(_)) | Err(Error::NotAccepted(_)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Sends what a clinician announces (credential, availability) to a
    /// new contact.
    pub(crate) async fn announce_to(&self, core: &mut Core, to: &[u8; 32]) -> Result<()> {
        if let Some(credential) = self.own_credential()? {
            self.send_presentation(core, to, &credential).await?;
        }
        self.send_own_availability(core, to).await
    }

    /// Checks a proof of a credential record and returns the record; the
    /// head must extend every head this device saw.
    async fn check_credential_proof(
        &self,
        address: &DeviceAddress,
        proof: &alcove_api::v1::CredentialProof,
        min_epoch: u64,
    ) -> Result<(CredentialCommitment, u64)> {
        let _guard = self.transparency.lock().await;
        let parsed = credential_proof_from_wire(proof)?;
        self.advance(&parsed.head, None).await?;
        check_credential(address.as_bytes(), &proof.record, &parsed, min_epoch)?;
        let record = CredentialCommitment::from_bytes(&proof.record).map_err(|e| {
            Error::KeyTransparency(alcove_keylog::TransparencyError::Malformed(match e {
                CredentialError::BadSignature => "a logged revocation's signature is bad",
                _ => "a logged credential record does not decode",
            }))
        })?;
        Ok((record, parsed.epoch))
    }

    /// Verifies the credential `contact` presented against the issuers the
    /// app trusts, the clock and the relay's key log. `Ok` means: show the
    /// contact as licensed ([`VerifiedCredential::badge`]). Each refusal is
    /// its own [`CredentialProblem`] inside [`Error::Credential`]; a key
    /// log that does not hold up is [`Error::KeyTransparency`].
    ///
    /// ```no_run
    /// # async fn f(client: alcove_client::Client, therapist: alcove_client::DeviceAddress) -> Result<(), alcove_client::Error> {
    /// use alcove_client::TrustedIssuer;
    /// let practice = TrustedIssuer { name: "Northside Practice".into(), key: [0u8; 32] };
    /// match client.verify_credential(&therapist, &[practice]).await {
    ///     Ok(v) => println!("{} — {}", v.display_name, v.badge()),
    ///     Err(e) => println!("not verified: {e}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn verify_credential(
        &self,
        contact: &DeviceAddress,
        trusted: &[TrustedIssuer],
    ) -> Result<VerifiedCredential> {
        let address = *contact.as_bytes();
        {
            let core = self.core.lock().await;
            core.contact(&address)?;
        }
        let mut kept = self.contact_credential(&address)?;
        if kept.presented.is_empty() {
            return Err(problem(CredentialProblem::NotPresented));
        }
        // Bytes that do not parse or do not verify are forged either way.
        let credential = Credential::from_bytes(&kept.presented)
            .map_err(|_| problem(CredentialProblem::Forged))?;
        let issuer = trusted
            .iter()
            .find(|t| IssuerId(t.key) == credential.issuer())
            .ok_or_else(|| {
                problem(CredentialProblem::UntrustedIssuer {
                    issuer: credential.issuer().to_string(),
                })
            })?;
        if credential.claims().subject != *contact {
            return Err(problem(CredentialProblem::WrongIdentity));
        }
        let now = self.now_secs();
        if let Some((_, at)) = kept
            .revoked
            .iter()
            .find(|(d, at)| *d == credential.digest() && now >= *at)
        {
            return Err(problem(CredentialProblem::Revoked { revoked_at: *at }));
        }
        if credential.is_expired_at(now) {
            return Err(problem(CredentialProblem::Expired {
                expired_at: credential.claims().expires_at,
            }));
        }
        self.pin_log_key().await?;
        let proof = match self.relay.credential_proof(&address).await {
            Ok(p) => p,
            Err(Error::InvalidInput(_)) => return Err(problem(CredentialProblem::NotCommitted)),
            Err(e) => return Err(e),
        };
        let (record, epoch) = self
            .check_credential_proof(contact, &proof, kept.epoch_seen)
            .await?;
        kept.epoch_seen = kept.epoch_seen.max(epoch);
        if let Some(r) = &record.revocation {
            if !kept.revoked.iter().any(|(d, _)| *d == record.digest) {
                kept.revoked.push((record.digest, r.revoked_at()));
            }
        }
        self.vault
            .commit(vec![self.contact_credential_record(&address, &kept)?], &[])?;
        if record.digest != credential.digest() || record.issuer != credential.issuer() {
            return Err(problem(CredentialProblem::NotCommitted));
        }
        if let Some(r) = &record.revocation {
            if now >= r.revoked_at() {
                return Err(problem(CredentialProblem::Revoked {
                    revoked_at: r.revoked_at(),
                }));
            }
        }
        let claims = credential.claims();
        Ok(VerifiedCredential {
            display_name: claims.display_name.clone(),
            licence_number: claims.licence_number.clone(),
            jurisdiction: claims.jurisdiction.clone(),
            expires_at: claims.expires_at,
            issuer_name: issuer.name.clone(),
        })
    }
}

/// For an issuer's tools: hands a signed revocation of a clinician's
/// credential to the relay at `relay_url`, which logs it as the
/// clinician's next credential record; clients refuse the credential from
/// their next check on. Needs no profile: the issuer's signature is the
/// authority. A revocation of a credential the clinician does not present
/// (any more) is [`Error::NotAuthorized`], a malformed one
/// [`Error::InvalidInput`].
///
/// ```no_run
/// # async fn f(issuer: alcove_client::IssuerKey, credential: alcove_client::Credential) -> Result<(), alcove_client::Error> {
/// use alcove_client::Revocation;
/// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
/// let revocation = Revocation::sign(&issuer, &credential, now).map_err(|e| alcove_client::Error::InvalidInput(e.to_string()))?;
/// alcove_client::revoke_credential("https://relay.example.org", &credential.claims().subject, &revocation).await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "native")]
pub async fn revoke_credential(
    relay_url: &str,
    clinician: &DeviceAddress,
    revocation: &alcove_protocol::credential::Revocation,
) -> Result<()> {
    crate::relay::parse_url(relay_url)?;
    let transport = crate::Transport::tcp(relay_url)?;
    alcove_api::v1::key_log_client::KeyLogClient::new(transport)
        .revoke_credential(alcove_api::v1::RevokeCredentialRequest {
            address: clinician.as_bytes().to_vec(),
            revocation: revocation.as_bytes().to_vec(),
        })
        .await?;
    Ok(())
}
