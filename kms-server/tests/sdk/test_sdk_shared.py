"""Two `kms serve` instances on one PostgreSQL database, driven with Alibaba Cloud's official
V3 Python SDK (alibabacloud-kms20160120), unchanged.

Created on A, used on B at once; disabled on A, refused on B within the bound; rotated on A,
B's new ciphertexts decrypt on A and A's on B; a key policy set on A enforced on B; scheduled
for deletion on A, refused on B.

Environment: KMS_ENDPOINT_A, KMS_ENDPOINT_B (host:port), KMS_ACCESS_KEY_ID,
KMS_ACCESS_KEY_SECRET, KMS_CA_FILE. Prints one line per check and `N passed, M failed`.
"""

import base64
import os
import sys
import time
import traceback

from alibabacloud_kms20160120 import models as m
from alibabacloud_kms20160120.client import Client as V3Client
from alibabacloud_tea_openapi import models as open_api_models

AK = os.environ["KMS_ACCESS_KEY_ID"]
SK = os.environ["KMS_ACCESS_KEY_SECRET"]
CA_FILE = os.environ["KMS_CA_FILE"]
BOUND = 1.0  # seconds: a change on one instance is honoured on the other within this

results = {"passed": 0, "failed": 0}


def client(endpoint):
    return V3Client(
        open_api_models.Config(
            access_key_id=AK,
            access_key_secret=SK,
            endpoint=endpoint,
            region_id="cn-hangzhou",
            ca=CA_FILE,
        )
    )


a = client(os.environ["KMS_ENDPOINT_A"])
b = client(os.environ["KMS_ENDPOINT_B"])


def check(name):
    def run(fn):
        try:
            fn()
        except Exception:  # noqa: BLE001 - any failure fails the check
            results["failed"] += 1
            print(f"FAIL {name}")
            traceback.print_exc()
        else:
            results["passed"] += 1
            print(f"ok   {name}")
        return fn

    return run


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def error_code(fn):
    try:
        fn()
    except Exception as e:  # the SDK raises its own exception types
        return getattr(e, "code", None) or str(e)
    return "OK"


def within(bound, condition, what):
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > bound:
            raise AssertionError(f"{what}: not within {bound} s")
        time.sleep(0.02)
    return time.monotonic() - started


def encrypt(c, key_id, text=b"hello"):
    plaintext = base64.b64encode(text).decode()
    return c.encrypt(m.EncryptRequest(key_id=key_id, plaintext=plaintext)).body


def decrypt(c, blob):
    return base64.b64decode(c.decrypt(m.DecryptRequest(ciphertext_blob=blob)).body.plaintext)


KEY = {}


@check("created on A, used on B at once")
def _():
    KEY["id"] = a.create_key(m.CreateKeyRequest(description="shared")).body.key_metadata.key_id
    sealed = encrypt(b, KEY["id"])
    expect(decrypt(a, sealed.ciphertext_blob) == b"hello", "A opens what B sealed")


@check("rotated on A: each instance opens what the other sealed under the new version")
def _():
    version = a.create_key_version(m.CreateKeyVersionRequest(key_id=KEY["id"])).body
    new_version = version.key_version.key_version_id
    sealed_on_a = encrypt(a, KEY["id"], b"after rotation")
    expect(sealed_on_a.key_version_id == new_version, "A seals under the new primary")
    expect(decrypt(b, sealed_on_a.ciphertext_blob) == b"after rotation", "B opens it")
    sealed_on_b = encrypt(b, KEY["id"], b"from b")
    expect(decrypt(a, sealed_on_b.ciphertext_blob) == b"from b", "A opens B's")


@check("disabled on A: refused on B within the bound, enabled again likewise")
def _():
    a.disable_key(m.DisableKeyRequest(key_id=KEY["id"]))
    took = within(BOUND, lambda: error_code(lambda: encrypt(b, KEY["id"])) == "Rejected.Disabled", "disable")
    print(f"     (honoured on B after {took * 1000:.0f} ms)")
    a.enable_key(m.EnableKeyRequest(key_id=KEY["id"]))
    within(BOUND, lambda: error_code(lambda: encrypt(b, KEY["id"])) == "OK", "enable")


@check("a key policy set on A is enforced on B within the bound")
def _():
    other = a.create_key(m.CreateKeyRequest()).body.key_metadata.key_id
    encrypt(b, other)
    deny = (
        '{"Version":"1","Statement":['
        '{"Effect":"Allow","Principal":{"RAM":["acs:ram::*:*"]},"Action":["kms:*"],"Resource":["*"]},'
        '{"Effect":"Deny","Principal":{"RAM":["acs:ram::*:*"]},"Action":["kms:Encrypt"],"Resource":["*"]}]}'
    )
    a.set_key_policy(m.SetKeyPolicyRequest(key_id=other, policy_name="default", policy=deny))
    within(BOUND, lambda: error_code(lambda: encrypt(b, other)) == "Forbidden.NoPermission", "policy")


@check("scheduled for deletion on A: refused on B within the bound")
def _():
    a.schedule_key_deletion(m.ScheduleKeyDeletionRequest(key_id=KEY["id"], pending_window_in_days=7))
    within(
        BOUND,
        lambda: error_code(lambda: encrypt(b, KEY["id"])) == "Rejected.PendingDeletion",
        "schedule deletion",
    )


print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
