#!/usr/bin/env python3
"""A stand-in OAuth authorization server's signing side, for MCPGuard's auth tests, built on
PyJWT (an independent JOSE implementation): it makes signing keys, publishes their JWKS, and
mints tokens.

    jwt_issuer.py keys DIR KID:ALG...      make keys (ALG: RS256, ES256, EdDSA) and DIR/jwks.json
    jwt_issuer.py token DIR KID --sub S --iss I --aud A [--roles a,b] [--scope "x y"]
                                [--exp-in SECONDS] [--nbf-in SECONDS] [--hs256-secret S]
Keys made with `keys DIR --unlisted KID:ALG` are kept out of jwks.json (a forger's key).
"""

import argparse
import json
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def make(alg):
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    sys.exit(f"unknown algorithm {alg}")


def public_jwk(alg, key):
    codec = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[alg]
    return codec.to_jwk(key.public_key(), as_dict=True)


def keys(args):
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, "jwks.json")
    listed = json.load(open(path))["keys"] if os.path.exists(path) else []
    for spec, publish in [(s, True) for s in args.specs] + [(s, False) for s in args.unlisted]:
        kid, alg = spec.split(":")
        key = make(alg)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with open(os.path.join(args.dir, f"{kid}.pem"), "wb") as f:
            f.write(pem)
        with open(os.path.join(args.dir, f"{kid}.alg"), "w") as f:
            f.write(alg)
        if publish:
            jwk = public_jwk(alg, key)
            jwk.update({"kid": kid, "use": "sig", "alg": alg})
            listed = [k for k in listed if k.get("kid") != kid] + [jwk]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"keys": listed}, f)
    os.replace(tmp, path)


def token(args):
    now = int(time.time())
    claims = {"sub": args.sub, "iss": args.iss, "aud": args.aud, "iat": now, "exp": now + args.exp_in, "jti": f"t-{now}-{args.sub}"}
    if args.nbf_in is not None:
        claims["nbf"] = now + args.nbf_in
    if args.roles:
        claims["roles"] = args.roles.split(",")
    if args.scope is not None:
        claims["scope"] = args.scope
    if args.hs256_secret:
        print(jwt.encode(claims, args.hs256_secret, algorithm="HS256", headers={"kid": args.kid}))
        return
    alg = open(os.path.join(args.dir, f"{args.kid}.alg")).read()
    key = serialization.load_pem_private_key(open(os.path.join(args.dir, f"{args.kid}.pem"), "rb").read(), None)
    print(jwt.encode(claims, key, algorithm=alg, headers={"kid": args.kid}))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keys")
    k.add_argument("dir")
    k.add_argument("specs", nargs="*")
    k.add_argument("--unlisted", action="append", default=[])
    t = sub.add_parser("token")
    t.add_argument("dir")
    t.add_argument("kid")
    t.add_argument("--sub", required=True)
    t.add_argument("--iss", required=True)
    t.add_argument("--aud", required=True)
    t.add_argument("--roles")
    t.add_argument("--scope")
    t.add_argument("--exp-in", type=int, default=300)
    t.add_argument("--nbf-in", type=int)
    t.add_argument("--hs256-secret")
    args = parser.parse_args()
    {"keys": keys, "token": token}[args.command](args)


if __name__ == "__main__":
    main()
