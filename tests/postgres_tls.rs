//! TLS to PostgreSQL: a server of the test's own with `ssl = on` and a certificate from a test
//! CA. `verify-full` with that CA connects; another CA is refused; `require` encrypts without
//! checking, as PostgreSQL's own clients do. The service itself runs a login over
//! `verify-full`.

#[path = "common/pg_cluster.rs"]
mod pg_cluster;
#[path = "common/process.rs"]
mod process;

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use pg_cluster::TempPostgres;
use process::Setup;

/// A CA's certificate (PEM) and the issuer that signs with it.
fn test_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// Writes the server's certificate for localhost, signed by `issuer`, into the data directory.
fn server_certificate(data: &Path, issuer: &Issuer<'_, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(data.join("server.crt"), cert.pem()).unwrap();
    let key_path = data.join("server.key");
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}

#[tokio::test]
async fn verify_full_connects_with_the_right_ca_and_refuses_another() {
    let (ca_pem, issuer) = test_ca("FinHub test CA");
    let (other_pem, _) = test_ca("Someone else's CA");
    let pg = TempPostgres::start_with(
        &[
            "ssl=on",
            "ssl_cert_file=server.crt",
            "ssl_key_file=server.key",
        ],
        |data| {
            server_certificate(data, &issuer);
            // TCP connections only over TLS, so a connection that works is an encrypted one.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
            )
            .unwrap();
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let other = dir.path().join("other.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    std::fs::write(&other, other_pem).unwrap();
    let url = |mode: &str, root: &Path| {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode={mode}&sslrootcert={}",
            pg.port,
            root.display()
        )
    };

    let verified = Setup::new(url("verify-full", &ca), dir.path()).run(&["migrate"], None);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let verified = Setup::new(url("verify-full", &ca), dir.path());
    verified.create_customer("ada", "off", "correct horse battery");
    let instance = verified.serve("verified").await;
    let (status, body) = instance
        .login("ada@example.com", "correct horse battery")
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let token = body["bffToken"].as_str().unwrap();
    let (status, me) = instance.get("/api/v1/customers/me", Some(token)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{me}");
    assert_eq!(me["username"], "ada@example.com");

    let verify_ca = Setup::new(url("verify-ca", &ca), dir.path()).run(&["migrate"], None);
    assert!(
        verify_ca.status.success(),
        "{}",
        String::from_utf8_lossy(&verify_ca.stderr)
    );

    let refused = Setup::new(url("verify-full", &other), dir.path()).run(&["migrate"], None);
    assert!(
        !refused.status.success(),
        "a certificate from another CA is refused"
    );
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.starts_with("error: "), "{message}");

    let plain = Setup::new(url("disable", &ca), dir.path()).run(&["migrate"], None);
    assert!(!plain.status.success(), "the server takes TLS only");

    let encrypted = Setup::new(url("require", &other), dir.path()).run(&["migrate"], None);
    assert!(
        encrypted.status.success(),
        "{}",
        String::from_utf8_lossy(&encrypted.stderr)
    );
}
