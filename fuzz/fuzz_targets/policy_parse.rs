//! Key policy and RAM identity policy documents: parse arbitrary UTF-8 as both, and evaluate
//! whatever parses (as a resource policy and as an identity policy).
#![no_main]
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use kms_core::Caller;
use kms_policy::document::RequestContext;
use kms_policy::{PolicyDocument, PolicyKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for kind in [PolicyKind::Resource, PolicyKind::Identity] {
        if let Ok(doc) = PolicyDocument::parse_as(text, kind) {
            evaluate(&doc);
        }
    }
});

fn evaluate(doc: &PolicyDocument) {
    let callers = [
        Caller::account_root("1234"),
        Caller::ram_user("1234", "alice"),
        Caller::ram_role("5678", "app"),
    ];
    for caller in &callers {
        let arn = caller.arn();
        for action in ["kms:Encrypt", "kms:CreateKey", "kms:Fly", ""] {
            for resource in [
                "acs:kms:cn-hangzhou:1234:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "*",
                "",
            ] {
                let ctx = RequestContext {
                    caller,
                    principal_arn: &arn,
                    action,
                    resource,
                };
                let _ = doc.evaluate(&ctx);
                let _ = doc.evaluate_resource(&ctx);
            }
        }
    }
}
