"""Drives a running `kms serve --instance-listen` with Alibaba Cloud's official KMS 3.0 SDKs,
unchanged:

- alibabacloud-kms20160120 (the OpenAPI, V3 signatures) creates a network rule, a policy, an
  application access point and a client key, the keys and a secret;
- alibabacloud-dkms-gcs (the instance SDK) calls the instance gateway with that client key
  file: Encrypt/Decrypt, AdvanceEncrypt/AdvanceDecrypt, data keys, data key pairs, Sign/Verify,
  GetPublicKey, GetSecretValue, GenerateRandom;
- alibabacloud-kms-python-sdk's KMS 3.0 `Client` does the same through its instance mode.

Refusals checked with Alibaba's codes: a tampered signature, a client key outside its
validity window, a source address outside the network rule, a key outside the policy's
resources.

Environment: KMS_ENDPOINT and KMS_INSTANCE_ENDPOINT (host:port), KMS_ACCESS_KEY_ID,
KMS_ACCESS_KEY_SECRET, KMS_CA_FILE (ca.pem of `kms dev-cert`).
Prints one line per check and `N passed, M failed`; exits non-zero on any failure.
"""

import base64
import datetime
import hashlib
import json
import os
import sys
import traceback
import uuid
import warnings

warnings.simplefilter("ignore")

from alibabacloud_kms20160120 import models as m  # noqa: E402
from alibabacloud_kms20160120.client import Client as OpenApiClient  # noqa: E402
from alibabacloud_tea_openapi import models as open_api_models  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.serialization import pkcs12  # noqa: E402
from cryptography import x509  # noqa: E402
from openapi.models import Config as InstanceConfig  # noqa: E402
from sdk import models as im  # noqa: E402
from sdk.client import Client as InstanceClient  # noqa: E402

ENDPOINT = os.environ["KMS_ENDPOINT"]
INSTANCE_ENDPOINT = os.environ["KMS_INSTANCE_ENDPOINT"]
AK = os.environ["KMS_ACCESS_KEY_ID"]
SK = os.environ["KMS_ACCESS_KEY_SECRET"]
CA_FILE = os.environ["KMS_CA_FILE"]
RUN = uuid.uuid4().hex[:8]
PASSWORD = "client-" + RUN + "9"

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


def expect_error(code, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        got = getattr(e, "code", None)
        assert got == code, f"expected {code}, got {got}: {e}"
        return e
    raise AssertionError(f"expected {code}, the call succeeded")


openapi = OpenApiClient(
    open_api_models.Config(
        access_key_id=AK,
        access_key_secret=SK,
        endpoint=ENDPOINT,
        region_id="cn-hangzhou",
        protocol="https",
        ca=CA_FILE,
    )
)


def create_key(spec="Aliyun_AES_256", usage=None):
    req = m.CreateKeyRequest(key_spec=spec, key_usage=usage, description="instance sdk " + RUN)
    return openapi.create_key(req).body.key_metadata.key_id


instance_id = openapi.get_default_kms_instance().body.default_kms_instance_id
aes = create_key()
outside = create_key()
rsa_sign = create_key("RSA_2048", "SIGN/VERIFY")
ec_sign = create_key("EC_P256", "SIGN/VERIFY")
rsa_enc = create_key("RSA_2048", "ENCRYPT/DECRYPT")
secret_name = "instance-secret-" + RUN
openapi.create_secret(
    m.CreateSecretRequest(
        secret_name=secret_name,
        secret_data="s3cr3t-" + RUN,
        version_id="v1",
        encryption_key_id=aes,
        dkmsinstance_id=instance_id,
        extended_config={"CustomData": {"run": RUN}},
    )
)
described = openapi.describe_secret(m.DescribeSecretRequest(secret_name=secret_name)).body
assert described.dkmsinstance_id == instance_id, described

rule = "rule-" + RUN
policy = "policy-" + RUN
aap = "aap-" + RUN
resources = [f"key/{k}" for k in (aes, rsa_sign, ec_sign, rsa_enc)] + ["secret/*"]


@check("OpenAPI: network rule, policy, application access point, client key")
def _():
    r = openapi.create_network_rule(
        m.CreateNetworkRuleRequest(name=rule, type="Private", source_private_ip='["127.0.0.1"]')
    ).body
    assert r.name == rule and json.loads(r.source_private_ip) == ["127.0.0.1"]
    assert r.arn.endswith(":network/" + rule), r.arn
    d = openapi.describe_network_rule(m.DescribeNetworkRuleRequest(name=rule)).body
    assert d.type == "Private"
    p = openapi.create_policy(
        m.CreatePolicyRequest(
            name=policy,
            permissions=json.dumps(
                [
                    "RbacPermission/Template/CryptoServiceKeyUser",
                    "RbacPermission/Template/CryptoServiceSecretUser",
                ]
            ),
            resources=json.dumps(resources),
            kms_instance=instance_id,
            access_control_rules=json.dumps({"NetworkRules": [rule]}),
        )
    ).body
    assert p.kms_instance == instance_id
    dp = openapi.describe_policy(m.DescribePolicyRequest(name=policy)).body
    assert dp.resources == resources and len(dp.permissions) == 2
    a = openapi.create_application_access_point(
        m.CreateApplicationAccessPointRequest(
            name=aap, authentication_method="ClientKey", policies=json.dumps([policy])
        )
    ).body
    assert a.authentication_method == "ClientKey" and json.loads(a.policies) == [policy]
    names = [
        x.name
        for x in openapi.list_application_access_points(
            m.ListApplicationAccessPointsRequest()
        ).body.application_access_points.application_access_point
    ]
    assert aap in names
    assert instance_id in [
        x.kms_instance_id
        for x in openapi.list_kms_instances(m.ListKmsInstancesRequest()).body.kms_instances.kms_instance
    ]
    got = openapi.get_kms_instance(m.GetKmsInstanceRequest(kms_instance_id=instance_id)).body
    assert got.kms_instance.instance_id == instance_id


def new_client_key(not_before=None, not_after=None):
    r = openapi.create_client_key(
        m.CreateClientKeyRequest(
            aap_name=aap, password=PASSWORD, not_before=not_before, not_after=not_after
        )
    ).body
    assert r.client_key_id.startswith("KAAP."), r.client_key_id
    assert r.key_algorithm == "RSA_2048"
    return r


made = new_client_key()
key_file = json.dumps({"KeyId": made.client_key_id, "PrivateKeyData": made.private_key_data})


@check("the client key file is a PKCS#12 under the password, the public half kept")
def _():
    private, cert, _ = pkcs12.load_key_and_certificates(
        base64.b64decode(made.private_key_data), PASSWORD.encode()
    )
    assert private.key_size == 2048
    got = openapi.get_client_key(m.GetClientKeyRequest(client_key_id=made.client_key_id)).body
    stored = x509.load_pem_x509_certificate(got.public_key_data.encode())
    assert stored.public_key().public_numbers() == private.public_key().public_numbers()
    assert cert.public_key().public_numbers() == private.public_key().public_numbers()
    assert got.aap_name == aap and got.key_origin == "KMS_PROVIDED"
    listed = openapi.list_client_keys(m.ListClientKeysRequest(aap_name=aap)).body.client_keys
    assert [k.client_key_id for k in listed] == [made.client_key_id]


def instance_config(key_json=key_file, password=PASSWORD):
    return InstanceConfig(
        protocol="https",
        client_key_content=key_json,
        password=password,
        endpoint=INSTANCE_ENDPOINT,
        ca_file_path=CA_FILE,
    )


gcs = InstanceClient(instance_config())


@check("dkms-gcs: Encrypt and Decrypt (AES-GCM, IV returned, AAD)")
def _():
    r = gcs.encrypt(im.EncryptRequest(key_id=aes, plaintext=b"hello instance", aad=b"ctx"))
    assert r.algorithm == "AES_GCM" and len(r.iv) == 12, r.to_map()
    assert r.key_id == aes
    d = gcs.decrypt(
        im.DecryptRequest(key_id=aes, ciphertext_blob=r.ciphertext_blob, iv=r.iv, aad=b"ctx")
    )
    assert d.plaintext == b"hello instance"
    expect_error(
        "InvalidCiphertext",
        lambda: gcs.decrypt(
            im.DecryptRequest(key_id=aes, ciphertext_blob=r.ciphertext_blob, iv=r.iv, aad=b"other")
        ),
    )


@check("dkms-gcs: AdvanceEncrypt and AdvanceDecrypt (self-describing blob, survives rotation)")
def _():
    r = gcs.advance_encrypt(im.AdvanceEncryptRequest(key_id=aes, plaintext=b"advance", aad=b"a"))
    assert r.ciphertext_blob[:3] == b"$\x00\x02", r.ciphertext_blob[:3]
    assert r.key_version_id
    openapi.create_key_version(m.CreateKeyVersionRequest(key_id=aes))
    d = gcs.advance_decrypt(im.AdvanceDecryptRequest(ciphertext_blob=r.ciphertext_blob, aad=b"a"))
    assert d.plaintext == b"advance" and d.key_version_id == r.key_version_id
    r2 = gcs.advance_encrypt(im.AdvanceEncryptRequest(key_id=aes, plaintext=b"newer", aad=b"a"))
    assert r2.key_version_id != r.key_version_id
    # Encrypt's tuples still open after the rotation, and AdvanceDecrypt takes them too.
    e = gcs.encrypt(im.EncryptRequest(key_id=aes, plaintext=b"tuple"))
    d2 = gcs.advance_decrypt(
        im.AdvanceDecryptRequest(key_id=aes, ciphertext_blob=e.ciphertext_blob, iv=e.iv)
    )
    assert d2.plaintext == b"tuple"


@check("dkms-gcs: GenerateDataKey and AdvanceGenerateDataKey; the key opens locally")
def _():
    r = gcs.generate_data_key(im.GenerateDataKeyRequest(key_id=aes, number_of_bytes=32, aad=b"k"))
    assert len(r.plaintext) == 32
    d = gcs.decrypt(
        im.DecryptRequest(key_id=aes, ciphertext_blob=r.ciphertext_blob, iv=r.iv, aad=b"k")
    )
    assert d.plaintext == r.plaintext
    sealed = AESGCM(r.plaintext).encrypt(b"\x00" * 12, b"local data", None)
    assert AESGCM(d.plaintext).decrypt(b"\x00" * 12, sealed, None) == b"local data"
    a = gcs.advance_generate_data_key(im.AdvanceGenerateDataKeyRequest(key_id=aes, number_of_bytes=16))
    assert len(a.plaintext) == 16 and a.key_version_id
    ad = gcs.advance_decrypt(im.AdvanceDecryptRequest(ciphertext_blob=a.ciphertext_blob))
    assert ad.plaintext == a.plaintext


@check("dkms-gcs: data key pairs (PEM and DER), with and without plaintext, Advance too")
def _():
    r = gcs.generate_data_key_pair(
        im.GenerateDataKeyPairRequest(key_id=aes, key_pair_spec="EC_P256", key_format="PEM", aad=b"p")
    )
    private = serialization.load_pem_private_key(r.private_key_plaintext, None)
    public = serialization.load_pem_public_key(r.public_key)
    assert private.public_key().public_numbers() == public.public_numbers()
    d = gcs.decrypt(
        im.DecryptRequest(key_id=aes, ciphertext_blob=r.private_key_ciphertext_blob, iv=r.iv, aad=b"p")
    )
    assert d.plaintext == r.private_key_plaintext
    w = gcs.generate_data_key_pair_without_plaintext(
        im.GenerateDataKeyPairWithoutPlaintextRequest(key_id=aes, key_pair_spec="RSA_2048", key_format="DER")
    )
    pub = serialization.load_der_public_key(w.public_key)
    assert pub.key_size == 2048
    dd = gcs.decrypt(im.DecryptRequest(key_id=aes, ciphertext_blob=w.private_key_ciphertext_blob, iv=w.iv))
    priv = serialization.load_der_private_key(dd.plaintext, None)
    assert priv.public_key().public_numbers() == pub.public_numbers()
    a = gcs.advance_generate_data_key_pair(
        im.AdvanceGenerateDataKeyPairRequest(key_id=aes, key_pair_spec="EC_P256K", key_format="PEM")
    )
    assert a.key_version_id
    ad = gcs.advance_decrypt(im.AdvanceDecryptRequest(ciphertext_blob=a.private_key_ciphertext_blob))
    assert ad.plaintext == a.private_key_plaintext
    aw = gcs.advance_generate_data_key_pair_without_plaintext(
        im.AdvanceGenerateDataKeyPairWithoutPlaintextRequest(key_id=aes, key_pair_spec="EC_P256", key_format="DER")
    )
    awd = gcs.advance_decrypt(im.AdvanceDecryptRequest(ciphertext_blob=aw.private_key_ciphertext_blob))
    serialization.load_der_private_key(awd.plaintext, None)


@check("dkms-gcs: Sign and Verify, RAW and DIGEST, checked against GetPublicKey with cryptography")
def _():
    message = b"instance message " + RUN.encode()
    digest = hashlib.sha256(message).digest()
    for key, alg in ((rsa_sign, "RSA_PSS_SHA_256"), (rsa_sign, "RSA_PKCS1_SHA_256"), (ec_sign, "ECDSA_SHA_256")):
        s = gcs.sign(im.SignRequest(key_id=key, algorithm=alg, message=message, message_type="RAW"))
        pem = gcs.get_public_key(im.GetPublicKeyRequest(key_id=key)).public_key
        public = serialization.load_pem_public_key(pem.encode())
        if alg == "ECDSA_SHA_256":
            public.verify(s.signature, message, ec.ECDSA(hashes.SHA256()))
        elif alg == "RSA_PSS_SHA_256":
            public.verify(
                s.signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
                hashes.SHA256(),
            )
        else:
            public.verify(s.signature, message, padding.PKCS1v15(), hashes.SHA256())
        v = gcs.verify(
            im.VerifyRequest(key_id=key, algorithm=alg, message=digest, message_type="DIGEST", signature=s.signature)
        )
        assert v.value is True
        bad = gcs.verify(
            im.VerifyRequest(key_id=key, algorithm=alg, message=b"other", message_type="RAW", signature=s.signature)
        )
        assert bad.value is False


@check("dkms-gcs: asymmetric Encrypt and Decrypt with an RSA key (RSAES_OAEP_SHA_256)")
def _():
    r = gcs.encrypt(im.EncryptRequest(key_id=rsa_enc, plaintext=b"rsa secret", algorithm="RSAES_OAEP_SHA_256"))
    pem = gcs.get_public_key(im.GetPublicKeyRequest(key_id=rsa_enc)).public_key
    d = gcs.decrypt(im.DecryptRequest(key_id=rsa_enc, ciphertext_blob=r.ciphertext_blob, algorithm="RSAES_OAEP_SHA_256"))
    assert d.plaintext == b"rsa secret"
    public = serialization.load_pem_public_key(pem.encode())
    local = public.encrypt(
        b"from outside",
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    d2 = gcs.decrypt(im.DecryptRequest(key_id=rsa_enc, ciphertext_blob=local, algorithm="RSAES_OAEP_SHA_256"))
    assert d2.plaintext == b"from outside"


@check("dkms-gcs: GetSecretValue and GenerateRandom")
def _():
    s = gcs.get_secret_value(im.GetSecretValueRequest(secret_name=secret_name))
    assert s.secret_data == "s3cr3t-" + RUN and s.version_id == "v1"
    assert "ACSCurrent" in s.version_stages
    assert not s.extended_config and not s.automatic_rotation
    s = gcs.get_secret_value(
        im.GetSecretValueRequest(secret_name=secret_name, fetch_extended_config=True)
    )
    assert json.loads(s.extended_config) == {"CustomData": {"run": RUN}}, s.extended_config
    assert s.automatic_rotation == "Disabled", s.automatic_rotation
    r = gcs.generate_random(im.GenerateRandomRequest(length=48))
    assert len(r.random) == 48


@check("kms-python-sdk: the KMS 3.0 Client in instance mode")
def _():
    from alibabacloud_kms_kms20160120.client import Client as KmsClient

    client = KmsClient(kms_instance_config=instance_config())
    r = client.encrypt(im.EncryptRequest(key_id=aes, plaintext=b"via kms sdk"))
    d = client.decrypt(im.DecryptRequest(key_id=aes, ciphertext_blob=r.ciphertext_blob, iv=r.iv))
    assert d.plaintext == b"via kms sdk"
    a = client.advance_encrypt(im.AdvanceEncryptRequest(key_id=aes, plaintext=b"adv"))
    assert client.advance_decrypt(im.AdvanceDecryptRequest(ciphertext_blob=a.ciphertext_blob)).plaintext == b"adv"
    k = client.generate_data_key(im.GenerateDataKeyRequest(key_id=aes))
    assert len(k.plaintext) == 32
    s = client.sign(im.SignRequest(key_id=ec_sign, algorithm="ECDSA_SHA_256", message=b"m"))
    assert client.verify(
        im.VerifyRequest(key_id=ec_sign, algorithm="ECDSA_SHA_256", message=b"m", signature=s.signature)
    ).value
    assert client.get_public_key(im.GetPublicKeyRequest(key_id=ec_sign)).public_key.startswith("-----BEGIN")
    assert client.get_secret_value(im.GetSecretValueRequest(secret_name=secret_name)).secret_data
    assert len(client.generate_random(im.GenerateRandomRequest(length=16)).random) == 16


@check("refused: a tampered signature (SignatureNotMatch)")
def _():
    wrong = json.loads(key_file)
    # Another client key's private key under this key's id: the signature does not verify.
    other = new_client_key()
    wrong["PrivateKeyData"] = other.private_key_data
    bad = InstanceClient(instance_config(json.dumps(wrong)))
    e = expect_error("SignatureNotMatch", lambda: bad.generate_random(im.GenerateRandomRequest(length=8)))
    assert e.data["httpCode"] == 401, e.data


@check("refused: a client key outside its validity window")
def _():
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    now = datetime.datetime.now(datetime.timezone.utc)
    future = new_client_key(
        (now + datetime.timedelta(days=1)).strftime(fmt), (now + datetime.timedelta(days=2)).strftime(fmt)
    )
    c = InstanceClient(
        instance_config(json.dumps({"KeyId": future.client_key_id, "PrivateKeyData": future.private_key_data}))
    )
    expect_error("Unauthorized", lambda: c.encrypt(im.EncryptRequest(key_id=aes, plaintext=b"x")))


@check("refused: a key outside the policy's resources (Forbidden.NoPermission)")
def _():
    expect_error("Forbidden.NoPermission", lambda: gcs.encrypt(im.EncryptRequest(key_id=outside, plaintext=b"x")))


@check("refused: a source address outside the network rule (Forbidden.NoPermission)")
def _():
    openapi.update_network_rule(m.UpdateNetworkRuleRequest(name=rule, source_private_ip='["10.0.0.0/8"]'))
    try:
        expect_error("Forbidden.NoPermission", lambda: gcs.encrypt(im.EncryptRequest(key_id=aes, plaintext=b"x")))
    finally:
        openapi.update_network_rule(m.UpdateNetworkRuleRequest(name=rule, source_private_ip='["127.0.0.1"]'))
    gcs.encrypt(im.EncryptRequest(key_id=aes, plaintext=b"back"))


@check("deleting the AAP revokes its client keys")
def _():
    openapi.delete_application_access_point(m.DeleteApplicationAccessPointRequest(name=aap))
    expect_error("Unauthorized", lambda: gcs.generate_random(im.GenerateRandomRequest(length=8)))
    expect_error(
        "Forbidden.ResourceNotFound",
        lambda: openapi.get_client_key(m.GetClientKeyRequest(client_key_id=made.client_key_id)),
    )


print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
