//! Quick start: a key on the embedded store, rotated, encrypting and decrypting.
//!
//! Run with `cargo run -p kms-core --example quickstart [DATA_DIR]` (default `./kms-data`).
//! Run it twice: the second run finds the first run's key and ciphertext and decrypts them.

use std::path::PathBuf;

use kms_core::api::*;
use kms_core::{Caller, Kms, KmsError};
use kms_storage::{root_key_file, RedbStorage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "kms-data".into()));
    // Creates the directory (mode 0700) and a root key (mode 0600) on first use.
    let root_key = root_key_file::load_or_create(&dir)?;
    let kms = Kms::builder()
        .storage(RedbStorage::open(dir.join("kms.redb"))?)
        .root_key(root_key)
        .account_id("1234")
        .region("cn-hangzhou")
        .build()?;
    let me = Caller::account_root("1234");

    // One key per data directory, found again by its alias.
    let alias = "alias/quickstart";
    let key_id = match kms.describe_key(
        &me,
        KeyIdRequest {
            key_id: alias.into(),
        },
    ) {
        Ok(found) => {
            println!("found {} ({})", alias, found.key_metadata.key_id);
            found.key_metadata.key_id
        }
        Err(KmsError::AliasNotFound { .. }) => {
            let created = kms.create_key(
                &me,
                CreateKeyRequest {
                    description: Some("quick start key".into()),
                    enable_automatic_rotation: Some(true),
                    rotation_interval: Some("30d".into()),
                    ..Default::default()
                },
            )?;
            let key_id = created.key_metadata.key_id;
            kms.create_alias(
                &me,
                AliasRequest {
                    alias_name: alias.into(),
                    key_id: key_id.clone(),
                },
            )?;
            println!("created {key_id} as {alias}");
            key_id
        }
        Err(e) => return Err(e.into()),
    };

    let context: EncryptionContext = [("purpose".to_string(), "quickstart".to_string())].into();
    let before = kms.encrypt(
        &me,
        EncryptRequest {
            key_id: alias.into(),
            plaintext: b"encrypted before the rotation".to_vec().into(),
            encryption_context: context.clone(),
            ..Default::default()
        },
    )?;
    let rotated = kms.create_key_version(
        &me,
        KeyIdRequest {
            key_id: key_id.clone(),
        },
    )?;
    println!(
        "rotated: version {} is now primary",
        rotated.key_version.key_version_id
    );
    let after = kms.encrypt(
        &me,
        EncryptRequest {
            key_id: alias.into(),
            plaintext: b"encrypted after the rotation".to_vec().into(),
            encryption_context: context.clone(),
            ..Default::default()
        },
    )?;

    for sealed in [before, after] {
        let opened = kms.decrypt(
            &me,
            DecryptRequest {
                ciphertext_blob: sealed.ciphertext_blob,
                encryption_context: context.clone(),
                ..Default::default()
            },
        )?;
        println!(
            "version {} decrypts: {}",
            opened.key_version_id,
            String::from_utf8_lossy(&opened.plaintext)
        );
    }

    let data_key = kms.generate_data_key(
        &me,
        GenerateDataKeyRequest {
            key_id: alias.into(),
            ..Default::default()
        },
    )?;
    println!(
        "data key of {} bytes, wrapped in a {}-byte blob",
        data_key.plaintext.len(),
        data_key.ciphertext_blob.len()
    );
    let versions = kms.list_key_versions(
        &me,
        ListKeyVersionsRequest {
            key_id: key_id.clone(),
            ..Default::default()
        },
    )?;
    println!("{} has {} versions", key_id, versions.total_count);
    Ok(())
}
