use super::*;

#[test]
fn luhn_accepts_valid_and_rejects_invalid() {
    assert!(luhn("4111 1111 1111 1111"));
    assert!(luhn("378282246310005"));
    assert!(!luhn("4111111111111112"));
    assert!(!luhn("7"));
}

#[test]
fn card_issuers() {
    assert!(card_issuer("4111111111111111"));
    assert!(card_issuer("5555555555554444"));
    assert!(card_issuer("2221000000000009"));
    assert!(card_issuer("378282246310005"));
    assert!(card_issuer("6011111111111117"));
    assert!(!card_issuer("9111111111111111"));
    assert!(!card_issuer("37828224631000"));
}

#[test]
fn ssn_ranges() {
    assert!(ssn("078", "05", "1120"));
    for (a, g, s) in [
        ("000", "12", "3456"),
        ("666", "12", "3456"),
        ("900", "12", "3456"),
        ("123", "00", "4567"),
        ("123", "45", "0000"),
    ] {
        assert!(!ssn(a, g, s), "{a}-{g}-{s}");
    }
}

#[test]
fn iban_checks() {
    assert!(iban("DE89 3704 0044 0532 0130 00"));
    assert!(iban("GB29NWBK60161331926819"));
    assert!(iban("FR1420041010050500013M02606"));
    assert!(iban("NL91ABNA0417164300"));
    assert!(!iban("DE89 3704 0044 0532 0130 01"));
    assert!(!iban("DE89 3704 0044 0532 0130"));
    assert!(!iban("ZZ89370400440532013000"));
}

#[test]
fn jwt_structure() {
    use base64::Engine;
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let good = format!("{}.{}.c2ln", e(r#"{"alg":"HS256"}"#), e(r#"{"sub":"1"}"#));
    assert!(jwt(&good));
    let unsigned = format!("{}.{}.", e(r#"{"alg":"none"}"#), e(r#"{"sub":"1"}"#));
    assert!(jwt(&unsigned));
    let no_alg = format!("{}.{}.c2ln", e(r#"{"typ":"JWT"}"#), e(r#"{"sub":"1"}"#));
    assert!(!jwt(&no_alg));
    let not_json = format!("{}.{}.c2ln", e("hello"), e(r#"{"sub":"1"}"#));
    assert!(!jwt(&not_json));
}

#[test]
fn randomness() {
    assert!(random_secret("q8#Lm2!vZr7@Tx"));
    assert!(random_secret("Zq8vL2mX9rT4wY7p"));
    assert!(!random_secret("password"));
    assert!(!random_secret("${SECRET}"));
    assert!(!random_secret("aaaaaaaaaaaaaaaa"));
    assert!(!random_secret("hello world foo"));
    assert!(!random_secret("https://example.org/x"));
}
