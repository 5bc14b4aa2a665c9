//! `mcpguard init`: write a commented configuration and the policy folder.

use std::path::Path;

use anyhow::{Context, bail};

const CONFIG: &str = include_str!("templates/config.yaml");
const POLICIES_README: &str = include_str!("templates/policies-README.md");

/// The shipped policy sets, written next to the configuration.
const POLICY_SETS: &[(&str, &str)] = &[
    (
        "owasp_asi_2026_strict.yaml",
        include_str!("../../../policies/owasp_asi_2026_strict.yaml"),
    ),
    (
        "minimal.yaml",
        include_str!("../../../policies/minimal.yaml"),
    ),
    (
        "custom_template.yaml",
        include_str!("../../../policies/custom_template.yaml"),
    ),
];

/// Creates `<dir>/.mcpguard/config.yaml` and `<dir>/.mcpguard/policies/`.
pub fn run(dir: &Path, force: bool) -> anyhow::Result<()> {
    let root = dir.join(".mcpguard");
    let config = root.join("config.yaml");
    let policies = root.join("policies");
    if config.exists() && !force {
        bail!(
            "`{}` already exists; pass --force to overwrite it",
            config.display()
        );
    }
    std::fs::create_dir_all(&policies)
        .with_context(|| format!("cannot create `{}`", policies.display()))?;
    std::fs::write(&config, CONFIG)
        .with_context(|| format!("cannot write `{}`", config.display()))?;
    let readme = policies.join("README.md");
    if !readme.exists() || force {
        std::fs::write(&readme, POLICIES_README)
            .with_context(|| format!("cannot write `{}`", readme.display()))?;
    }
    for (name, text) in POLICY_SETS {
        let path = policies.join(name);
        if !path.exists() || force {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
        }
    }
    let keys = root.join("keys");
    let private = keys.join("signing.key");
    if !private.exists() {
        std::fs::create_dir_all(&keys)
            .with_context(|| format!("cannot create `{}`", keys.display()))?;
        let key = mcpguard_audit::keys::generate();
        mcpguard_audit::keys::write_key_pair(&key, &private, &keys.join("signing.pub"))?;
        println!(
            "wrote {} (signing key, mode 0600) and signing.pub",
            private.display()
        );
    }
    let payload_key = keys.join("payload.key");
    if !payload_key.exists() {
        crate::audit_cmd::write_private(&payload_key, &crate::audit_cmd::payload_key_text())?;
        println!(
            "wrote {} (payload encryption key, mode 0600)",
            payload_key.display()
        );
    }
    let digest_key = keys.join("digest.key");
    if !digest_key.exists() {
        crate::audit_cmd::write_private(&digest_key, &crate::audit_cmd::payload_key_text())?;
        println!(
            "wrote {} (finding digest key, mode 0600)",
            digest_key.display()
        );
    }
    println!("wrote {}", config.display());
    println!("wrote {}/", policies.display());
    println!("next: edit the upstreams, then run `mcpguard serve`");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_a_valid_configuration() {
        let config = crate::config_load::parse_yaml(Path::new("config.yaml"), CONFIG).unwrap();
        assert!(config.check().is_empty(), "{:?}", config.check());
        assert_eq!(config.proxy.port, 8000);
        assert!(config.upstreams.contains_key("everything"));
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), false).unwrap();
        assert!(dir.path().join(".mcpguard/config.yaml").exists());
        assert!(dir.path().join(".mcpguard/policies/README.md").exists());
        let key = dir.path().join(".mcpguard/keys/signing.key");
        let signing = mcpguard_audit::keys::load_signing_key(&key).unwrap();
        let payload =
            std::fs::read_to_string(dir.path().join(".mcpguard/keys/payload.key")).unwrap();
        mcpguard_envelope::seal::PayloadKey::from_file_text(&payload).unwrap();
        assert!(dir.path().join(".mcpguard/keys/digest.key").exists());
        let strict = dir
            .path()
            .join(".mcpguard/policies/owasp_asi_2026_strict.yaml");
        let text = std::fs::read_to_string(&strict).unwrap();
        mcpguard_policy::compile(&[("strict".into(), text)], mcpguard_policy::Action::Deny)
            .unwrap();
        let err = run(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        run(dir.path(), true).unwrap();
        // --force never replaces the signing key (old checkpoints would stop verifying).
        assert_eq!(
            mcpguard_audit::keys::load_signing_key(&key)
                .unwrap()
                .to_bytes(),
            signing.to_bytes()
        );
    }
}
