//! Tests of `customers/mod.rs`.

use super::*;

#[test]
fn usernames_are_trimmed_and_lower_cased() {
    let u = Username::parse("  Alice@Example.COM ").unwrap();
    assert_eq!(u.as_str(), "alice@example.com");
}

#[test]
fn one_name_in_any_unicode_form_is_one_username() {
    let composed = Username::parse("Jos\u{e9}@example.com").unwrap();
    let decomposed = Username::parse("Jose\u{301}@example.com").unwrap();
    assert_eq!(composed, decomposed);
    assert_eq!(composed.as_str(), "jos\u{e9}@example.com");
    // Full-width letters are compatibility forms of the ASCII ones.
    let wide = Username::parse("\u{ff21}lice@example.com").unwrap();
    assert_eq!(wide.as_str(), "alice@example.com");
}

#[test]
fn invisible_formatting_characters_are_refused() {
    for sneaky in [
        "ali\u{200b}ce",
        "\u{feff}alice",
        "al\u{200d}ice",
        "alice\u{2066}",
    ] {
        assert!(Username::parse(sneaky).is_err(), "{sneaky:?}");
    }
}

#[test]
fn empty_overlong_and_control_usernames_are_refused() {
    assert!(Username::parse("   ").is_err());
    assert!(Username::parse(&"a".repeat(255)).is_err());
    assert!(Username::parse("al\u{0}ice").is_err());
    assert!(Username::parse(&"a".repeat(254)).is_ok());
}

#[test]
fn emails_need_a_local_part_and_a_dotted_domain() {
    assert!(Email::parse("alice@example.com").is_ok());
    for bad in [
        "alice",
        "@example.com",
        "alice@example",
        "a b@example.com",
        "a@b@c.com",
        "a@.com",
    ] {
        assert!(Email::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn phones_are_e164_and_masked_to_country_and_last_two_digits() {
    let p = Phone::parse("+44 7700 900189").unwrap();
    assert_eq!(p.as_str(), "+447700900189");
    assert_eq!(p.masked(), "+44********89");
    assert!(Phone::parse("07700900189").is_err());
    assert!(Phone::parse("+44abc").is_err());
}

#[test]
fn emails_are_masked_to_first_and_last_letter() {
    assert_eq!(
        Email::parse("alice@example.com").unwrap().masked(),
        "a***e@example.com"
    );
    assert_eq!(
        Email::parse("al@example.com").unwrap().masked(),
        "a***@example.com"
    );
}

#[test]
fn kyc_and_method_parse_case_insensitively() {
    assert_eq!(
        "verified".parse::<KycStatus>().unwrap(),
        KycStatus::Verified
    );
    assert_eq!(
        "sms".parse::<TwoFactorMethod>().unwrap(),
        TwoFactorMethod::Sms
    );
    assert!("maybe".parse::<KycStatus>().is_err());
}

fn profile(phone: Option<&str>, two_factor: Option<TwoFactorMethod>) -> Profile {
    Profile {
        id: CustomerId::generate(),
        username: Username::parse("alice@example.com").unwrap(),
        email: Email::parse("alice@example.com").unwrap(),
        phone: phone.map(|p| Phone::parse(p).unwrap()),
        first_name: PersonName::parse("Alice").unwrap(),
        last_name: PersonName::parse("Tester").unwrap(),
        kyc_status: KycStatus::Verified,
        two_factor,
    }
}

#[test]
fn a_new_customer_holds_the_factor_its_profile_names_for_its_own_phone_or_mailbox() {
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned();
    let by_sms = NewCustomer::new(
        profile(Some("+447700900123"), Some(TwoFactorMethod::Sms)),
        hash.clone(),
    )
    .unwrap();
    assert_eq!(
        by_sms.factor().map(|f| &f.kind),
        Some(&FactorKind::Sms(Phone::parse("+447700900123").unwrap()))
    );
    let by_email = NewCustomer::new(profile(None, Some(TwoFactorMethod::Email)), hash.clone());
    assert_eq!(
        by_email.unwrap().factor().map(|f| &f.kind),
        Some(&FactorKind::Email(
            Email::parse("alice@example.com").unwrap()
        ))
    );
    let without = NewCustomer::new(profile(Some("+447700900123"), None), hash.clone());
    assert!(without.unwrap().factor().is_none());
    // SMS two-factor with no phone to send to is refused, not stored as a factor that cannot
    // be used.
    assert!(NewCustomer::new(profile(None, Some(TwoFactorMethod::Sms)), hash).is_err());
}
