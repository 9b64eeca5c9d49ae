"""Drives a running `kms serve` with Alibaba Cloud's two official Python SDKs, unchanged.

- alibabacloud-kms20160120 (V3 signatures, ACS3-HMAC-SHA256)
- aliyun-python-sdk-kms through aliyunsdkcore's AcsClient (V1 signatures, HMAC-SHA1)

Both talk HTTPS to the server and verify its certificate against a development CA.

Environment: KMS_ENDPOINT (host:port), KMS_ACCESS_KEY_ID, KMS_ACCESS_KEY_SECRET, KMS_CA_FILE (the
PEM CA that signed the server certificate, ca.pem from `kms dev-cert`).
Prints one line per check and a closing `N passed, M failed`; exits non-zero on any failure.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import traceback
import uuid

from alibabacloud_kms20160120 import models as m
from alibabacloud_kms20160120.client import Client as V3Client
from alibabacloud_tea_openapi import models as open_api_models

from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkkms.request.v20160120 import (
    AsymmetricSignRequest,
    AsymmetricVerifyRequest,
    CancelKeyDeletionRequest,
    CreateAliasRequest,
    CreateKeyRequest,
    DecryptRequest,
    DescribeKeyRequest,
    DisableKeyRequest,
    EnableKeyRequest,
    EncryptRequest,
    GenerateDataKeyRequest,
    ListAliasesRequest,
    ListResourceTagsRequest,
    ListTagResourcesRequest,
    ScheduleKeyDeletionRequest,
    TagResourceRequest,
    TagResourcesRequest,
    UntagResourcesRequest,
)

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

ENDPOINT = os.environ["KMS_ENDPOINT"]
AK = os.environ["KMS_ACCESS_KEY_ID"]
SK = os.environ["KMS_ACCESS_KEY_SECRET"]
CA_FILE = os.environ["KMS_CA_FILE"]
REGION = "cn-hangzhou"
RUN = uuid.uuid4().hex[:8]

results = {"passed": 0, "failed": 0}


def check(name):
    """Runs the decorated function at once as one named check."""

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


# Variables through which Python's ssl, requests or aliyunsdkcore could be told to trust another
# CA; cleared for the clients that must NOT trust the development CA.
CA_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "ALIBABA_CLOUD_CA_BUNDLE")


def expect_certificate_rejected(error_text):
    expect("CERTIFICATE_VERIFY_FAILED" in error_text, f"not a certificate verification error: {error_text}")


# ---- V3: alibabacloud-kms20160120 ---------------------------------------------------------


def v3_client(secret=SK):
    # No `protocol`: the SDK's default, HTTPS (every operation's Params say protocol='HTTPS').
    # The CA is the SDK's own option Config.ca, a path to a PEM file: alibabacloud_tea_openapi
    # copies it into the runtime options (client.py, do_request: 'ca': runtime.ca or self._ca),
    # and darabonba's DaraCore.do_action hands it to requests as `verify=` (darabonba/core.py:
    # `verify = runtime_option.get('ca', True) ...`, then `session.send(..., verify=verify)`).
    # REQUESTS_CA_BUNDLE would not work: DaraCore calls Session.send directly, which never reads
    # the environment. (SSL_CERT_FILE happens to, because DaraCore.get_adapter builds its context
    # with ssl.create_default_context(), but that is Python's ssl, not an SDK option.)
    return V3Client(
        open_api_models.Config(
            access_key_id=AK,
            access_key_secret=secret,
            endpoint=ENDPOINT,
            region_id=REGION,
            ca=CA_FILE,
        )
    )


v3 = v3_client()


def v3_error_code(fn):
    try:
        fn()
    except Exception as e:  # the SDK raises its own exception types
        return getattr(e, "code", None) or str(e)
    raise AssertionError("the call succeeded but should have failed")


def v3_state(key_id):
    return v3.describe_key(m.DescribeKeyRequest(key_id=key_id)).body.key_metadata.key_state


V3 = {}


@check("v3 CreateKey + DescribeKey")
def _():
    meta = v3.create_key(m.CreateKeyRequest(description=f"sdk v3 {RUN}")).body.key_metadata
    expect(meta.key_state == "Enabled", meta.key_state)
    expect(meta.key_spec == "Aliyun_AES_256", meta.key_spec)
    V3["key"] = meta.key_id
    got = v3.describe_key(m.DescribeKeyRequest(key_id=meta.key_id)).body.key_metadata
    expect(got.description == f"sdk v3 {RUN}", got.description)
    expect(got.arn.endswith(f":key/{meta.key_id}"), got.arn)


@check("v3 DisableKey / EnableKey")
def _():
    key = V3["key"]
    v3.disable_key(m.DisableKeyRequest(key_id=key))
    expect(v3_state(key) == "Disabled", "not disabled")
    code = v3_error_code(lambda: v3.encrypt(m.EncryptRequest(key_id=key, plaintext="x")))
    expect(code == "Rejected.Disabled", code)
    v3.enable_key(m.EnableKeyRequest(key_id=key))
    expect(v3_state(key) == "Enabled", "not enabled")


@check("v3 CreateAlias + ListAliases")
def _():
    alias = f"alias/sdk-v3-{RUN}"
    v3.create_alias(m.CreateAliasRequest(alias_name=alias, key_id=V3["key"]))
    page = v3.list_aliases(m.ListAliasesRequest(page_size=100)).body
    names = {a.alias_name: a.key_id for a in page.aliases.alias}
    expect(names.get(alias) == V3["key"], names)
    V3["alias"] = alias


@check("v3 TagResource + ListResourceTags")
def _():
    tags = json.dumps([{"TagKey": "team", "TagValue": "payments"}, {"TagKey": "env", "TagValue": "ci"}])
    v3.tag_resource(m.TagResourceRequest(key_id=V3["key"], tags=tags))
    got = v3.list_resource_tags(m.ListResourceTagsRequest(key_id=V3["key"])).body.tags.tag
    expect({t.tag_key: t.tag_value for t in got} == {"team": "payments", "env": "ci"}, got)


@check("v3 Encrypt + Decrypt (through the alias, with a context)")
def _():
    text = "hello, kms + 世界 *~/"
    ctx = {"tenant": "acme", "purpose": "sdk test"}
    sealed = v3.encrypt(m.EncryptRequest(key_id=V3["alias"], plaintext=text, encryption_context=ctx)).body
    expect(sealed.key_id == V3["key"], sealed.key_id)
    opened = v3.decrypt(m.DecryptRequest(ciphertext_blob=sealed.ciphertext_blob, encryption_context=ctx)).body
    expect(opened.plaintext == text, opened.plaintext)
    code = v3_error_code(
        lambda: v3.decrypt(m.DecryptRequest(ciphertext_blob=sealed.ciphertext_blob, encryption_context={"tenant": "x"}))
    )
    expect(code == "InvalidCiphertext", code)
    V3["blob"] = sealed.ciphertext_blob


@check("v3 GenerateDataKey + Decrypt of its blob")
def _():
    dk = v3.generate_data_key(m.GenerateDataKeyRequest(key_id=V3["key"], number_of_bytes=32)).body
    expect(len(base64.b64decode(dk.plaintext)) == 32, dk.plaintext)
    opened = v3.decrypt(m.DecryptRequest(ciphertext_blob=dk.ciphertext_blob)).body
    expect(opened.plaintext == dk.plaintext, "Decrypt must return the Base64 data key")


@check("v3 EC_P256 AsymmetricSign + AsymmetricVerify (+ cryptography cross-check)")
def _():
    meta = v3.create_key(m.CreateKeyRequest(key_spec="EC_P256", key_usage="SIGN/VERIFY")).body.key_metadata
    version = meta.primary_key_version
    if not version:
        versions = v3.list_key_versions(m.ListKeyVersionsRequest(key_id=meta.key_id)).body
        version = versions.key_versions.key_version[0].key_version_id
    digest = hashlib.sha256(b"message to sign").digest()
    d64 = base64.b64encode(digest).decode()
    sig = v3.asymmetric_sign(
        m.AsymmetricSignRequest(key_id=meta.key_id, key_version_id=version, algorithm="ECDSA_SHA_256", digest=d64)
    ).body.value
    ok = v3.asymmetric_verify(
        m.AsymmetricVerifyRequest(
            key_id=meta.key_id, key_version_id=version, algorithm="ECDSA_SHA_256", digest=d64, value=sig
        )
    ).body.value
    expect(ok is True, f"verify answered {ok!r}")
    other = base64.b64encode(hashlib.sha256(b"another message").digest()).decode()
    bad = v3.asymmetric_verify(
        m.AsymmetricVerifyRequest(
            key_id=meta.key_id, key_version_id=version, algorithm="ECDSA_SHA_256", digest=other, value=sig
        )
    ).body.value
    expect(bad is False, f"verify of another digest answered {bad!r}")
    pem = v3.get_public_key(m.GetPublicKeyRequest(key_id=meta.key_id, key_version_id=version)).body.public_key
    public = serialization.load_pem_public_key(pem.encode())
    public.verify(base64.b64decode(sig), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    V3["ec_key"], V3["ec_version"] = meta.key_id, version


@check("v3 ScheduleKeyDeletion / CancelKeyDeletion")
def _():
    key = v3.create_key(m.CreateKeyRequest(description="to delete")).body.key_metadata.key_id
    v3.schedule_key_deletion(m.ScheduleKeyDeletionRequest(key_id=key, pending_window_in_days=7))
    meta = v3.describe_key(m.DescribeKeyRequest(key_id=key)).body.key_metadata
    expect(meta.key_state == "PendingDeletion", meta.key_state)
    expect(bool(meta.delete_date), "no DeleteDate")
    v3.cancel_key_deletion(m.CancelKeyDeletionRequest(key_id=key))
    expect(v3_state(key) == "Enabled", "not back to Enabled")


@check("v3 CreateSecret (SecretData in the form body) + GetSecretValue")
def _():
    name = f"sdk-secret-{RUN}"
    data = "p@ss word & more = 100%"
    v3.create_secret(
        m.CreateSecretRequest(
            secret_name=name, secret_data=data, version_id="v1", encryption_key_id=V3["key"]
        )
    )
    got = v3.get_secret_value(m.GetSecretValueRequest(secret_name=name)).body
    expect(got.secret_data == data, got.secret_data)
    expect(got.version_id == "v1", got.version_id)
    V3["secret"] = name


def v3_pairs(resource_type, resource_ids=None, tags=None):
    """Every (ResourceId, TagKey, TagValue) ListTagResources answers, following NextToken."""
    out, token, pages = [], None, 0
    while True:
        body = v3.list_tag_resources(
            m.ListTagResourcesRequest(
                resource_type=resource_type,
                resource_id=resource_ids,
                tag=[m.ListTagResourcesRequestTag(key=k, value=v) for k, v in (tags or [])] or None,
                next_token=token,
            )
        ).body
        pages += 1
        out += [(t.resource_id, t.tag_key, t.tag_value) for t in body.tag_resources.tag_resource or []]
        token = body.next_token
        if not token:
            return out, pages


@check("v3 TagResources + ListTagResources (NextToken) + UntagResources on keys")
def _():
    keys = [v3.create_key(m.CreateKeyRequest(description=f"batch {i}")).body.key_metadata.key_id for i in range(3)]
    tags = [m.TagResourcesRequestTag(key=f"k{i}", value=f"v{i}") for i in range(8)]
    v3.tag_resources(m.TagResourcesRequest(resource_type="key", resource_id=keys, tag=tags))
    got, pages = v3_pairs("key", keys)
    want = sorted((k, f"k{i}", f"v{i}") for k in keys for i in range(8))
    expect(got == want, got)
    expect(pages == 2, f"24 pairs in pages of 20 should take 2 pages, took {pages}")
    only, _ = v3_pairs("key", tags=[("k3", "v3")])
    expect(sorted(only) == sorted((k, "k3", "v3") for k in keys), only)
    v3.untag_resources(m.UntagResourcesRequest(resource_type="key", resource_id=keys[:2], tag_key=["k0", "k1"]))
    got, _ = v3_pairs("key", keys[:1])
    expect(got == sorted((keys[0], f"k{i}", f"v{i}") for i in range(2, 8)), got)
    v3.untag_resources(m.UntagResourcesRequest(resource_type="key", resource_id=[keys[2]], all=True))
    got, _ = v3_pairs("key", [keys[2]])
    expect(got == [], got)
    code = v3_error_code(
        lambda: v3.tag_resources(
            m.TagResourcesRequest(
                resource_type="key",
                resource_id=keys,
                tag=[m.TagResourcesRequestTag(key="d", value="1"), m.TagResourcesRequestTag(key="d", value="2")],
            )
        )
    )
    expect(code == "Duplicate.TagKey", code)
    code = v3_error_code(
        lambda: v3.tag_resources(
            m.TagResourcesRequest(
                resource_type="key",
                resource_id=[keys[0], str(uuid.uuid4())],
                tag=[m.TagResourcesRequestTag(key="new", value="x")],
            )
        )
    )
    expect(code == "InvalidResourceId.NotFound", code)
    got, _ = v3_pairs("key", keys[:1])
    expect(("new" not in {k for _, k, _ in got}), f"a refused batch changed a key: {got}")
    V3["batch_keys"] = keys


@check("v3 TagResources + ListTagResources + UntagResources on a secret")
def _():
    name = V3["secret"]
    v3.tag_resources(
        m.TagResourcesRequest(
            resource_type="secret",
            resource_id=[name],
            tag=[m.TagResourcesRequestTag(key="owner", value="dba"), m.TagResourcesRequestTag(key="env", value="ci")],
        )
    )
    got, _ = v3_pairs("secret", [name])
    expect(got == [(name, "env", "ci"), (name, "owner", "dba")], got)
    v3.untag_resources(m.UntagResourcesRequest(resource_type="secret", resource_id=[name], tag_key=["env"]))
    got, _ = v3_pairs("secret", [name])
    expect(got == [(name, "owner", "dba")], got)


def wrap_for_import(public_key_b64, material):
    public = serialization.load_der_public_key(base64.b64decode(public_key_b64))
    return base64.b64encode(
        public.encrypt(
            material,
            padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
    ).decode()


@check("v3 HMAC_SHA256 key: GenerateMac + VerifyMac (+ Python hmac cross-check)")
def _():
    meta = v3.create_key(
        m.CreateKeyRequest(key_spec="HMAC_SHA256", key_usage="GENERATE/VERIFY_MAC", origin="EXTERNAL")
    ).body.key_metadata
    expect(meta.key_state == "PendingImport", meta.key_state)
    material = os.urandom(32)
    params = v3.get_parameters_for_import(
        m.GetParametersForImportRequest(
            key_id=meta.key_id, wrapping_algorithm="RSAES_OAEP_SHA_256", wrapping_key_spec="RSA_2048"
        )
    ).body
    v3.import_key_material(
        m.ImportKeyMaterialRequest(
            key_id=meta.key_id,
            encrypted_key_material=wrap_for_import(params.public_key, material),
            import_token=params.import_token,
            key_material_expire_unix=0,
        )
    )
    expect(v3_state(meta.key_id) == "Enabled", "import did not enable the key")
    message = "MAC me, 世界".encode()
    msg64 = base64.b64encode(message).decode()
    body = v3.generate_mac(m.GenerateMacRequest(key_id=meta.key_id, algorithm="HMAC_SHA_256", message=msg64)).body
    expect(body.key_id == meta.key_id, body.key_id)
    expect(body.algorithm == "HMAC_SHA_256", f"Algorithm {body.algorithm!r}")
    expect(base64.b64decode(body.mac) == hmac.new(material, message, hashlib.sha256).digest(), "MAC differs")
    ok = v3.verify_mac(
        m.VerifyMacRequest(key_id=meta.key_id, algorithm="HMAC_SHA_256", message=msg64, mac=body.mac)
    ).body
    expect(ok.value is True, f"VerifyMac answered Value={ok.value!r}")
    expect(ok.algorithm == "HMAC_SHA_256", f"Algorithm {ok.algorithm!r}")
    expect(ok.key_id == meta.key_id, ok.key_id)
    bad = base64.b64encode(hmac.new(material, b"other", hashlib.sha256).digest()).decode()
    no = v3.verify_mac(m.VerifyMacRequest(key_id=meta.key_id, algorithm="HMAC_SHA_256", message=msg64, mac=bad)).body
    expect(no.value is False, f"VerifyMac of a wrong MAC answered Value={no.value!r}")
    # A fresh engine-made HMAC key, through its alias.
    fresh = v3.create_key(m.CreateKeyRequest(key_spec="HMAC_SHA256", key_usage="GENERATE/VERIFY_MAC")).body
    alias = f"alias/sdk-mac-{RUN}"
    v3.create_alias(m.CreateAliasRequest(alias_name=alias, key_id=fresh.key_metadata.key_id))
    mac = v3.generate_mac(m.GenerateMacRequest(key_id=alias, algorithm="HMAC_SHA_256", message=msg64)).body.mac
    ok = v3.verify_mac(m.VerifyMacRequest(key_id=alias, algorithm="HMAC_SHA_256", message=msg64, mac=mac)).body
    expect(ok.value is True and ok.key_id == fresh.key_metadata.key_id, (ok.value, ok.key_id))
    code = v3_error_code(
        lambda: v3.generate_mac(m.GenerateMacRequest(key_id=alias, algorithm="HMAC_SHA_512", message=msg64))
    )
    expect(code == "InvalidParameter", code)
    code = v3_error_code(
        lambda: v3.generate_mac(m.GenerateMacRequest(key_id=V3["key"], algorithm="HMAC_SHA_256", message=msg64))
    )
    expect(code == "Rejected.UnsupportedOperation", code)
    code = v3_error_code(
        lambda: v3.generate_mac(
            m.GenerateMacRequest(key_id=alias, algorithm="HMAC_SHA_256", message=msg64, dry_run="true")
        )
    )
    expect(code == "DryRunOperationError", code)


@check("v3 ListKeys paging")
def _():
    body = v3.list_keys(m.ListKeysRequest(page_number=1, page_size=2)).body
    expect(body.page_size == 2 and body.total_count >= 3, (body.page_size, body.total_count))
    expect(len(body.keys.key) == 2, body.keys.key)


@check("v3 unknown key is Forbidden.KeyNotFound")
def _():
    code = v3_error_code(lambda: v3.describe_key(m.DescribeKeyRequest(key_id=str(uuid.uuid4()))))
    expect(code == "Forbidden.KeyNotFound", code)


@check("v3 wrong secret is SignatureDoesNotMatch")
def _():
    code = v3_error_code(lambda: v3_client("wrong-secret").describe_key(m.DescribeKeyRequest(key_id=V3["key"])))
    expect(code == "SignatureDoesNotMatch", code)


# Run in a fresh interpreter. Inside this process the check would be meaningless: darabonba keeps
# one requests Session per protocol://host:port (DaraCore._get_session) whose adapter shares one
# SSLContext, and urllib3 loads a client's `ca` into that shared context, so once a trusting client
# has connected, a client without `ca` to the same address connects too.
UNTRUSTING_V3 = """
import os, sys
from alibabacloud_kms20160120 import models as m
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi import models as open_api_models
client = Client(open_api_models.Config(
    access_key_id=os.environ["KMS_ACCESS_KEY_ID"],
    access_key_secret=os.environ["KMS_ACCESS_KEY_SECRET"],
    endpoint=os.environ["KMS_ENDPOINT"],
    region_id="cn-hangzhou",
))
try:
    client.list_keys(m.ListKeysRequest())
except Exception as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(0)
print("the call succeeded without trusting the development CA")
sys.exit(3)
"""


@check("v3 HTTPS: a client not trusting the dev CA fails certificate verification")
def _():
    env = {k: v for k, v in os.environ.items() if k not in CA_ENV}
    child = subprocess.run(
        [sys.executable, "-c", UNTRUSTING_V3], env=env, capture_output=True, text=True, timeout=120
    )
    out = child.stdout + child.stderr
    expect(child.returncode == 0, f"exit status {child.returncode}: {out}")
    expect_certificate_rejected(out)


# ---- V1: aliyun-python-sdk-kms ------------------------------------------------------------


def v1_client(secret=SK, ak=AK, verify=CA_FILE):
    # HTTPS with the CA given by AcsClient's own `verify` argument (aliyunsdkcore/client.py:
    # `verify=None` in __init__, kept as self._verify and passed to HttpResponse), which
    # aliyunsdkcore/http/http_response.py hands to its vendored requests as `verify=` (a CA bundle
    # path; with no argument it reads ALIBABA_CLOUD_CA_BUNDLE, then falls back to certifi).
    return AcsClient(ak, secret, REGION, verify=verify)


v1c = v1_client()


def v1(request, client=None):
    request.set_endpoint(ENDPOINT)
    request.set_protocol_type("https")
    return json.loads((client or v1c).do_action_with_exception(request))


def v1_error_code(request, client=None):
    try:
        v1(request, client)
    except ServerException as e:
        return e.get_error_code()
    raise AssertionError("the call succeeded but should have failed")


def v1_state(key_id):
    r = DescribeKeyRequest.DescribeKeyRequest()
    r.set_KeyId(key_id)
    return v1(r)["KeyMetadata"]["KeyState"]


V1 = {}


@check("v1 CreateKey + DescribeKey")
def _():
    r = CreateKeyRequest.CreateKeyRequest()
    r.set_Description(f"sdk v1 {RUN}")
    meta = v1(r)["KeyMetadata"]
    expect(meta["KeyState"] == "Enabled", meta)
    V1["key"] = meta["KeyId"]
    expect(v1_state(meta["KeyId"]) == "Enabled", "describe")


@check("v1 DisableKey / EnableKey")
def _():
    r = DisableKeyRequest.DisableKeyRequest()
    r.set_KeyId(V1["key"])
    v1(r)
    expect(v1_state(V1["key"]) == "Disabled", "not disabled")
    r = EnableKeyRequest.EnableKeyRequest()
    r.set_KeyId(V1["key"])
    v1(r)
    expect(v1_state(V1["key"]) == "Enabled", "not enabled")


@check("v1 CreateAlias + ListAliases")
def _():
    alias = f"alias/sdk-v1-{RUN}"
    r = CreateAliasRequest.CreateAliasRequest()
    r.set_AliasName(alias)
    r.set_KeyId(V1["key"])
    v1(r)
    r = ListAliasesRequest.ListAliasesRequest()
    r.set_PageSize(100)
    names = {a["AliasName"]: a["KeyId"] for a in v1(r)["Aliases"]["Alias"]}
    expect(names.get(alias) == V1["key"], names)
    V1["alias"] = alias


@check("v1 TagResource + ListResourceTags")
def _():
    r = TagResourceRequest.TagResourceRequest()
    r.set_KeyId(V1["key"])
    r.set_Tags(json.dumps([{"TagKey": "owner", "TagValue": "v1"}]))
    v1(r)
    r = ListResourceTagsRequest.ListResourceTagsRequest()
    r.set_KeyId(V1["key"])
    tags = v1(r)["Tags"]["Tag"]
    expect([(t["TagKey"], t["TagValue"]) for t in tags] == [("owner", "v1")], tags)


@check("v1 Encrypt + Decrypt, and a V3 blob decrypted through V1")
def _():
    text = "v1 plaintext & friends = 100%"
    r = EncryptRequest.EncryptRequest()
    r.set_KeyId(V1["alias"])
    r.set_Plaintext(text)
    r.set_EncryptionContext(json.dumps({"k": "v"}))
    blob = v1(r)["CiphertextBlob"]
    r = DecryptRequest.DecryptRequest()
    r.set_CiphertextBlob(blob)
    r.set_EncryptionContext(json.dumps({"k": "v"}))
    expect(v1(r)["Plaintext"] == text, "round trip")
    r = DecryptRequest.DecryptRequest()
    r.set_CiphertextBlob(V3["blob"])
    r.set_EncryptionContext(json.dumps({"tenant": "acme", "purpose": "sdk test"}))
    expect(v1(r)["Plaintext"] == "hello, kms + 世界 *~/", "cross-SDK decrypt")


@check("v1 GenerateDataKey + Decrypt of its blob")
def _():
    r = GenerateDataKeyRequest.GenerateDataKeyRequest()
    r.set_KeyId(V1["key"])
    r.set_KeySpec("AES_128")
    dk = v1(r)
    expect(len(base64.b64decode(dk["Plaintext"])) == 16, dk["Plaintext"])
    r = DecryptRequest.DecryptRequest()
    r.set_CiphertextBlob(dk["CiphertextBlob"])
    expect(v1(r)["Plaintext"] == dk["Plaintext"], "Decrypt must return the Base64 data key")


@check("v1 EC_P256 AsymmetricSign + AsymmetricVerify")
def _():
    r = CreateKeyRequest.CreateKeyRequest()
    r.set_KeySpec("EC_P256")
    r.set_KeyUsage("SIGN/VERIFY")
    meta = v1(r)["KeyMetadata"]
    digest = base64.b64encode(hashlib.sha256(b"v1 message").digest()).decode()
    r = AsymmetricSignRequest.AsymmetricSignRequest()
    r.set_KeyId(meta["KeyId"])
    r.set_KeyVersionId(meta["PrimaryKeyVersion"])
    r.set_Algorithm("ECDSA_SHA_256")
    r.set_Digest(digest)
    sig = v1(r)["Value"]
    r = AsymmetricVerifyRequest.AsymmetricVerifyRequest()
    r.set_KeyId(meta["KeyId"])
    r.set_KeyVersionId(meta["PrimaryKeyVersion"])
    r.set_Algorithm("ECDSA_SHA_256")
    r.set_Digest(digest)
    r.set_Value(sig)
    expect(v1(r)["Value"] is True, "verify")


@check("v1 ScheduleKeyDeletion / CancelKeyDeletion")
def _():
    r = ScheduleKeyDeletionRequest.ScheduleKeyDeletionRequest()
    r.set_KeyId(V1["key"])
    r.set_PendingWindowInDays(7)
    v1(r)
    expect(v1_state(V1["key"]) == "PendingDeletion", "not pending deletion")
    r = CancelKeyDeletionRequest.CancelKeyDeletionRequest()
    r.set_KeyId(V1["key"])
    v1(r)
    expect(v1_state(V1["key"]) == "Enabled", "not back to Enabled")


@check("v1 GetSecretValue of the V3 secret")
def _():
    from aliyunsdkkms.request.v20160120 import GetSecretValueRequest

    r = GetSecretValueRequest.GetSecretValueRequest()
    r.set_SecretName(V3["secret"])
    expect(v1(r)["SecretData"] == "p@ss word & more = 100%", "secret data")


@check("v1 TagResources + ListTagResources + UntagResources")
def _():
    keys = V3["batch_keys"]
    r = TagResourcesRequest.TagResourcesRequest()
    r.set_ResourceType("key")
    r.set_ResourceIds(keys[:2])
    r.set_Tags([{"Key": "via", "Value": "v1"}, {"Key": "n", "Value": "1"}])
    v1(r)
    r = ListTagResourcesRequest.ListTagResourcesRequest()
    r.set_ResourceType("key")
    r.set_Tags([{"Key": "via", "Value": "v1"}])
    got = sorted((t["ResourceId"], t["TagKey"], t["TagValue"]) for t in v1(r)["TagResources"]["TagResource"])
    expect(got == sorted((k, "via", "v1") for k in keys[:2]), got)
    r = UntagResourcesRequest.UntagResourcesRequest()
    r.set_ResourceType("key")
    r.set_ResourceIds(keys[:1])
    r.set_TagKeys(["via"])
    v1(r)
    r = UntagResourcesRequest.UntagResourcesRequest()
    r.set_ResourceType("key")
    r.set_ResourceIds(keys[1:2])
    r.set_All(True)
    v1(r)
    r = ListTagResourcesRequest.ListTagResourcesRequest()
    r.set_ResourceType("key")
    r.set_ResourceIds(keys[:2])
    got = sorted((t["ResourceId"], t["TagKey"], t["TagValue"]) for t in v1(r)["TagResources"]["TagResource"])
    expect(got == sorted([(keys[0], "n", "1")] + [(keys[0], f"k{i}", f"v{i}") for i in range(2, 8)]), got)
    r = TagResourcesRequest.TagResourcesRequest()
    r.set_ResourceType("secret")
    r.set_ResourceIds([V3["secret"]])
    r.set_Tags([{"Key": "aliyun-reserved", "Value": "x"}])
    code = v1_error_code(r)
    expect(code == "InvalidParameter.TagKey", code)


@check("v1 wrong secret is SignatureDoesNotMatch")
def _():
    r = DescribeKeyRequest.DescribeKeyRequest()
    r.set_KeyId(V1["key"])
    code = v1_error_code(r, v1_client("wrong-secret"))
    expect(code == "SignatureDoesNotMatch", code)


@check("v1 unknown access key is InvalidAccessKeyId.NotFound")
def _():
    r = DescribeKeyRequest.DescribeKeyRequest()
    r.set_KeyId(V1["key"])
    code = v1_error_code(r, v1_client(ak="no-such-key"))
    expect(code == "InvalidAccessKeyId.NotFound", code)


@check("v1 HTTPS: a client not trusting the dev CA fails certificate verification")
def _():
    # verify=True: requests' default bundle (certifi), never ALIBABA_CLOUD_CA_BUNDLE. Each AcsClient
    # has its own Session and the vendored urllib3 builds an SSLContext per connection, so nothing
    # the trusting clients loaded carries over and the check can run in this process.
    r = DescribeKeyRequest.DescribeKeyRequest()
    r.set_KeyId(str(uuid.uuid4()))
    try:
        v1(r, v1_client(verify=True))
    except ServerException as e:
        raise AssertionError(f"the server answered ({e.get_error_code()}): TLS was not refused")
    except Exception as e:  # aliyunsdkcore's ClientException SDK.HttpError
        expect_certificate_rejected(str(e))
    else:
        raise AssertionError("the call succeeded without trusting the development CA")


print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
