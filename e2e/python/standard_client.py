"""Standard, non-Rust clients of lib-auth-server, run by e2e/tests/standard_clients.rs.

  standard_client.py verify-token <jwks_url> <issuer> <audience> <token>
      Verifies an access token the way a Python resource server would with PyJWT: the key
      from the JWKS by `kid` (PyJWKClient), the key's own algorithm only, `typ` at+jwt
      (RFC 9068), `iss`, `aud`, and `exp`/`iat`/`sub` required. Prints the claims as JSON.

  standard_client.py check-discovery <metadata_url> <issuer>
      Fetches the metadata and validates it with Authlib as RFC 8414 authorization server
      metadata and as OpenID Connect Discovery provider metadata; checks its issuer.

Exit status 0 when every check passes; 1 with the reason on stderr otherwise.
"""

import json
import sys
import urllib.request

import jwt
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata


def verify_token(jwks_url, issuer, audience, token):
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt":
        raise ValueError(f"typ is {header.get('typ')!r}, not 'at+jwt'")
    signing_key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=[signing_key.algorithm_name],
        issuer=issuer,
        audience=audience,
        options={"require": ["exp", "iat", "iss", "sub"]},
    )
    print(json.dumps(claims))


def check_discovery(metadata_url, issuer):
    with urllib.request.urlopen(metadata_url, timeout=10) as response:
        document = json.load(response)
    AuthorizationServerMetadata(document).validate()
    OpenIDProviderMetadata(document).validate()
    if document["issuer"] != issuer:
        raise ValueError(f"issuer is {document['issuer']!r}, not {issuer!r}")
    print(json.dumps({"issuer": document["issuer"], "token_endpoint": document["token_endpoint"]}))


def main(argv):
    commands = {"verify-token": (verify_token, 4), "check-discovery": (check_discovery, 2)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    command, _ = commands[argv[1]]
    try:
        command(*argv[2:])
    except Exception as error:  # every failure is an answer: the reason, exit status 1
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
