//! Verification of a SIP server's TLS certificate: the usual chain verification against the
//! trusted roots first; failing that, the one certificate the account pins (a certificate of
//! its CA file, or its SHA-256 fingerprint) is accepted when the server presents exactly that
//! certificate, with its host name and validity period still checked.
//!
//! This is what lets a PBX with a self-signed certificate marked CA (`openssl req -x509`
//! defaults) be trusted: webpki refuses such a certificate as a server's
//! (`CaUsedAsEndEntity`) even when it is itself a trust anchor.

use std::fmt;
use std::sync::Arc;

use handset_phone::pin::CertFingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, Error, OtherError, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};
use x509_cert::der::Decode;

/// The SHA-256 fingerprint of a DER certificate.
pub(crate) fn fingerprint(cert: &CertificateDer<'_>) -> CertFingerprint {
    CertFingerprint::from_digest(Sha256::digest(cert.as_ref()).into())
}

/// Chain verification, then pinned certificates.
#[derive(Debug)]
pub(crate) struct PinningVerifier {
    chain: Arc<WebPkiServerVerifier>,
    pins: Vec<CertFingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinningVerifier {
    /// Trusts `roots` (chain verification) and the certificates whose fingerprints are `pins`.
    pub(crate) fn new(
        roots: RootCertStore,
        pins: Vec<CertFingerprint>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, rustls::client::VerifierBuilderError> {
        let algorithms = provider.signature_verification_algorithms;
        let chain =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
        Ok(PinningVerifier {
            chain,
            pins,
            algorithms,
        })
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let refused = match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(refused) => refused,
        };
        let presented = fingerprint(end_entity);
        if !self.pins.contains(&presented) {
            return Err(untrusted(refused, presented, !self.pins.is_empty()));
        }
        // The pinned certificate stands in for a trust anchor only: whom it names and when it
        // is valid still count.
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_name(&parsed, server_name)?;
        check_validity(end_entity, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks `now` lies within the certificate's notBefore..=notAfter.
fn check_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
    let parsed = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = parsed.tbs_certificate().validity();
    let not_before = UnixTime::since_unix_epoch(validity.not_before.to_unix_duration());
    let not_after = UnixTime::since_unix_epoch(validity.not_after.to_unix_duration());
    if now.as_secs() < not_before.as_secs() {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before,
        }
        .into());
    }
    if now.as_secs() > not_after.as_secs() {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after,
        }
        .into());
    }
    Ok(())
}

/// A certificate neither chained to a trusted root nor pinned: the text says so and gives the
/// presented certificate's fingerprint (what the user would pin).
#[derive(Debug)]
pub(crate) struct Untrusted {
    /// Why chain verification refused it.
    reason: String,
    presented: CertFingerprint,
    pins: bool,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pinned = if self.pins {
            "not the pinned certificate"
        } else {
            "not pinned"
        };
        write!(
            f,
            "certificate not trusted ({}): not signed by a trusted CA and {pinned}; the server's \
             certificate has SHA-256 fingerprint {}",
            self.reason, self.presented
        )
    }
}

impl std::error::Error for Untrusted {}

/// Turns a trust failure of chain verification into [`Untrusted`]; other refusals (wrong
/// name, expired) are clear as they are.
fn untrusted(refused: Error, presented: CertFingerprint, pins: bool) -> Error {
    let reason = match &refused {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => "unknown issuer".to_string(),
        Error::InvalidCertificate(CertificateError::Other(other)) => {
            match other.to_string().as_str() {
                "CaUsedAsEndEntity" => "self-signed or CA certificate used by the server".into(),
                text => text.to_string(),
            }
        }
        _ => return refused,
    };
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Untrusted {
        reason,
        presented,
        pins,
    }))))
}

/// The text of a refused handshake: [`Untrusted`] and rustls' own messages, without the
/// `Debug` wrapping rustls prints for errors it does not know.
pub(crate) fn describe(error: &std::io::Error) -> String {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>());
    match rustls_error {
        Some(Error::InvalidCertificate(CertificateError::Other(other))) => {
            match other.0.downcast_ref::<Untrusted>() {
                Some(untrusted) => untrusted.to_string(),
                None => format!("invalid peer certificate: {other}"),
            }
        }
        _ => error.to_string(),
    }
}
