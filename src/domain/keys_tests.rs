//! Tests of `keys.rs`: several audit keys at once, after a rotation.

use super::*;

const OLD: &[u8] = b"the audit key before the rotation";
const NEW: &[u8] = b"the audit key after the rotation.";

struct Test;
impl Purpose for Test {
    const NAME: &'static [u8] = b"finhub test purpose v1";
}

fn mac_of(mac: &Hmac<Sha256>, message: &[u8]) -> Vec<u8> {
    mac.clone()
        .chain_update(message)
        .finalize()
        .into_bytes()
        .to_vec()
}

#[test]
fn a_key_id_names_the_key_without_giving_it_away() {
    let id = KeyId::of(NEW);
    assert_eq!(id.as_str().len(), 16);
    assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(id, KeyId::of(NEW), "stable");
    assert_ne!(id, KeyId::of(OLD));
}

#[test]
fn the_current_key_comes_first_and_a_key_given_twice_is_refused() {
    let keys = AuditKeys::new(NEW, [OLD]).unwrap();
    assert_eq!(keys.current_id(), &KeyId::of(NEW));
    let ids: Vec<_> = keys.ids().cloned().collect();
    assert_eq!(ids, [KeyId::of(NEW), KeyId::of(OLD)]);
    let held: Vec<_> = keys.secrets().collect();
    assert_eq!(held[1], (&KeyId::of(OLD), OLD));
    assert_eq!(
        format!("{keys:?}"),
        format!(
            "[KeyId(\"{}\"), KeyId(\"{}\")]",
            KeyId::of(NEW),
            KeyId::of(OLD)
        ),
        "Debug shows ids only"
    );
    assert_eq!(
        AuditKeys::new(NEW, [OLD, NEW]).unwrap_err(),
        DuplicateKey(KeyId::of(NEW))
    );
}

#[test]
fn a_purpose_key_hashes_under_the_current_key_and_keeps_the_previous_for_matching() {
    let before = PurposeKey::<Test>::derived_from(&AuditKeys::single(OLD)).unwrap();
    let after = PurposeKey::<Test>::derived_from(&AuditKeys::new(NEW, [OLD]).unwrap()).unwrap();
    let stored_before = mac_of(before.mac().unwrap(), b"message");
    assert_ne!(mac_of(after.mac().unwrap(), b"message"), stored_before);
    assert_eq!(after.previous_macs().len(), 1);
    assert_eq!(mac_of(&after.previous_macs()[0], b"message"), stored_before);
}

#[test]
fn what_a_previous_key_sealed_still_opens_and_says_so() {
    let aad = |_| Some(b"bound to".to_vec());
    let before = SealingKey::derived_from(&AuditKeys::single(OLD), b"purpose").unwrap();
    let after = SealingKey::derived_from(&AuditKeys::new(NEW, [OLD]).unwrap(), b"purpose").unwrap();
    let old = before.seal(1, b"secret", b"bound to").unwrap();
    let opened = after.open_noting_key(&old, aad).unwrap();
    assert_eq!(opened.message, b"secret");
    assert!(opened.under_previous_key);

    let new = after.seal(1, b"secret", b"bound to").unwrap();
    let opened = after.open_noting_key(&new, aad).unwrap();
    assert!(!opened.under_previous_key, "sealed under the current key");
    assert!(
        before.open(&new, aad).is_none(),
        "the old key alone cannot open it"
    );

    // Retired: with the previous key dropped, what it sealed no longer opens.
    let retired = SealingKey::derived_from(&AuditKeys::single(NEW), b"purpose").unwrap();
    assert!(retired.open(&old, aad).is_none());
    // Another purpose's key opens nothing of this one's.
    let other = SealingKey::derived_from(&AuditKeys::new(NEW, [OLD]).unwrap(), b"other").unwrap();
    assert!(other.open(&old, aad).is_none());
}

#[test]
fn tickets_issued_before_a_rotation_still_open() {
    let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let before = SealingKey::derived_from(&AuditKeys::single(OLD), b"tickets").unwrap();
    let after = SealingKey::derived_from(&AuditKeys::new(NEW, [OLD]).unwrap(), b"tickets").unwrap();
    let ticket = before
        .seal_ticket(b"purpose", now + time::Duration::minutes(5), b"payload")
        .unwrap();
    assert_eq!(
        after.open_ticket(b"purpose", &ticket, now).unwrap().payload,
        b"payload"
    );
}
