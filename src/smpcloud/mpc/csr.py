"""Per-party TLS keys: each party makes its own key and a certificate signing request (CSR); the
deployment CA signs the request. No one but a party ever sees its private key.

The flow (``smpcloud certs ca``, ``certs request``, ``certs sign``)::

    CA's machine:       create_ca(CADIR)                   -> CADIR/ca.pem, CADIR/ca-key.pem (0600)
    party i's machine:  create_request(DIR, i, hosts)      -> DIR/party-<i>-key.pem (0600, stays)
                                                              DIR/party-<i>.csr  (sent to the CA)
    CA's machine:       sign_request(CADIR, party-<i>.csr) -> party-<i>.pem  (sent back to party i,
                                                              with ca.pem)

A request names the party exactly as the certificate will (subject CN ``smpcloud-party-<id>``,
SAN URI ``urn:smpcloud:party:<id>``, the hosts as SAN DNS names / IP addresses) and carries the
party's public key, signed with its private key. :func:`sign_request` checks that self-signature,
reads the id as :func:`~smpcloud.mpc.certs.party_id_from_certificate` will after a handshake,
refuses anything it would not issue itself (an id outside 0..1000, a key other than ECDSA P-256,
names other than the party URI, DNS names and IP addresses, a request for CA powers or for an
extension smpcloud does not issue), then issues the certificate with
:func:`~smpcloud.mpc.certs.issue_certificate`, the function the one-machine path
(:func:`~smpcloud.mpc.certs.create_deployment`) issues with: same extensions, key usages and
validity. The CA copies only the public key and the checked names out of the request.

What it protects: a party's private key is made on its machine and never leaves it (mode 0600);
the CA's machine holds only the CA key and public material, so neither its operator nor a thief
of its disk can complete a TLS handshake as a party with a key it holds.
What it reveals: a request and a certificate hold the party id, its hosts, its public key and (a
certificate) the validity period; none is secret, so they may travel over any channel.
Who is trusted: the CA's operator, to certify each id for the genuine party only. The CA cannot
learn a party's key or read its traffic, but whoever holds ``ca-key.pem`` can issue a *second*
certificate for any id and impersonate that party; and a request can be forged in transit by
anyone (it holds nothing secret). So the CA signs a request for party i only after checking,
over a channel it trusts (a call, in person), that the request's public-key fingerprint
(:func:`request_fingerprint`, printed by both commands) is the one party i made; ``expected_id``
(``--id``) refuses a request naming another id.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smpcloud.errors import InvalidInputError
from smpcloud.keyfiles import write_secret_bytes
from smpcloud.mpc.certs import (
    ENDPOINT_DAYS,
    MAX_PARTIES,
    CaFiles,
    check_days,
    endpoint_subject,
    issue_certificate,
    load_certificate,
    parse_host,
    parse_hosts,
    party_id_from_names,
    party_uri,
    private_key_pem,
    refuse_existing,
    write_public_pem,
)

#: Largest request file read, in bytes (a P-256 request with a few hosts is under 1 KiB).
MAX_REQUEST_BYTES: Final = 64 * 1024
_HASHES: Final = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


class CertificateRequestError(InvalidInputError):
    """A certificate signing request the CA refuses to sign (the message says why)."""


@dataclass(frozen=True, slots=True)
class RequestFiles:
    """What :func:`create_request` wrote.

    Attributes:
        id: the party id requested.
        csr: ``party-<id>.csr``: send it (only it) to the CA.
        key: ``party-<id>-key.pem`` (0600): never send it anywhere.
        fingerprint: the public key's fingerprint (:func:`request_fingerprint`): tell it to the
            CA over a channel it trusts.
    """

    id: int
    csr: Path
    key: Path
    fingerprint: str


@dataclass(frozen=True, slots=True)
class SignedCertificate:
    """What :func:`sign_request` issued.

    Attributes:
        id: the party id certified.
        hosts: the hosts certified (DNS names and IP addresses, as text).
        cert: the certificate written: send it, with ``ca.pem``, to the party.
        not_after: the end of its validity (UTC).
        fingerprint: the certified public key's fingerprint (:func:`request_fingerprint`).
    """

    id: int
    hosts: tuple[str, ...]
    cert: Path
    not_after: datetime.datetime
    fingerprint: str


def request_fingerprint(item: x509.CertificateSigningRequest | x509.Certificate) -> str:
    """The SHA-256 fingerprint of a request's (or certificate's) public key.

    Hex byte pairs separated by colons, computed over the DER SubjectPublicKeyInfo: a request
    and the certificate issued from it have the same fingerprint.

    Raises:
        CertificateRequestError: the public key cannot be read.
    """
    try:
        der = item.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateRequestError("the public key cannot be read") from None
    return hashlib.sha256(der).digest().hex(":")


def _hex_digits(text: str) -> str:
    return "".join(c for c in text.lower() if c not in ": ")


def _check_party(party: int, what: str) -> None:
    if isinstance(party, bool) or not isinstance(party, int) or not 0 <= party <= MAX_PARTIES:
        raise InvalidInputError(f"{what} must be a party id in 0..{MAX_PARTIES}, got {party!r}")


def create_request(
    directory: str | os.PathLike[str],
    party: int,
    hosts: list[str] | tuple[str, ...],
    *,
    overwrite: bool = False,
) -> RequestFiles:
    """Make party ``party``'s private key and a certificate signing request, on its machine.

    Writes ``party-<id>-key.pem`` (ECDSA P-256, PKCS#8 PEM, mode 0600 from the moment it
    exists; it never leaves ``directory``) and ``party-<id>.csr`` (PEM, public: send it to the
    CA, which answers with ``party-<id>.pem``). The request names the party as its certificate
    will (see the module docstring) and is signed with the new key. Randomness: the OS CSPRNG
    (through OpenSSL).

    Args:
        directory: where to write; created (mode 0700) if missing.
        party: the party id, 0 (the dealer) to 1000.
        hosts: the host names / IP addresses the party is reached at (at least one).
        overwrite: replace a key and request already there (each file atomically). A
            certificate issued for the old key then no longer matches: have the new request
            signed.

    Returns:
        The paths written and the public key's fingerprint.

    Raises:
        InvalidInputError: a bad id, no host, or a host that is neither an IP address nor an
            ASCII DNS name.
        FileExistsError: the key or the request exists and ``overwrite`` is false; then
            nothing is written.
    """
    _check_party(party, "the id")
    names = parse_hosts(hosts)
    if not names:
        raise InvalidInputError("a request must name at least one host the party is reached at")
    folder = Path(directory)
    key_path, csr_path = folder / f"party-{party}-key.pem", folder / f"party-{party}.csr"
    if not overwrite:
        refuse_existing([key_path, csr_path])
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(endpoint_subject(party))
        .add_extension(x509.SubjectAlternativeName([party_uri(party), *names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: if a write fails half-way, no request points at a missing key.
    write_secret_bytes(key_path, private_key_pem(key), overwrite=overwrite)
    write_public_pem(csr_path, csr.public_bytes(serialization.Encoding.PEM), overwrite=overwrite)
    return RequestFiles(party, csr_path, key_path, request_fingerprint(csr))


def load_request(path: str | os.PathLike[str]) -> x509.CertificateSigningRequest:
    """Read one PEM certificate signing request (at most :data:`MAX_REQUEST_BYTES`).

    Does not check it: :func:`check_request` does.

    Raises:
        FileNotFoundError: no such file (other OSErrors as they come).
        CertificateRequestError: too large, or no PEM request (the message names the file).
    """
    source = Path(path)
    with source.open("rb") as handle:
        data = handle.read(MAX_REQUEST_BYTES + 1)
    if len(data) > MAX_REQUEST_BYTES:
        raise CertificateRequestError(
            f"{source}: too large for a certificate signing request (over {MAX_REQUEST_BYTES} "
            "bytes)"
        )
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError:
        raise CertificateRequestError(
            f"{source}: not a PEM certificate signing request (smpcloud certs request writes "
            "party-<id>.csr)"
        ) from None


def _check_extensions(extensions: x509.Extensions) -> None:
    for extension in extensions:
        value = extension.value
        if isinstance(value, x509.BasicConstraints) and value.ca:
            raise CertificateRequestError("the request asks for CA powers (CA:TRUE)")
        if isinstance(value, x509.KeyUsage) and (value.key_cert_sign or value.crl_sign):
            raise CertificateRequestError(
                "the request asks for CA powers (signing certificates or CRLs)"
            )
        allowed = (
            x509.SubjectAlternativeName,
            x509.BasicConstraints,
            x509.KeyUsage,
            x509.ExtendedKeyUsage,
            x509.SubjectKeyIdentifier,
        )
        if not isinstance(value, allowed):
            raise CertificateRequestError(
                f"the request asks for the extension {type(value).__name__} "
                f"({extension.oid.dotted_string}), which smpcloud does not issue"
            )


def _check_names(party: int, san: x509.SubjectAlternativeName) -> list[x509.GeneralName]:
    hosts: list[str] = []
    for name in san:
        if isinstance(name, x509.UniformResourceIdentifier):
            if name != party_uri(party):
                raise CertificateRequestError(
                    f"the request names the URI {name.value!r}: only its party URI is certified"
                )
        elif isinstance(name, (x509.DNSName, x509.IPAddress)):
            try:
                parse_host(str(name.value))
            except InvalidInputError as exc:
                raise CertificateRequestError(f"the request names a bad host: {exc}") from None
            hosts.append(str(name.value))
        else:
            raise CertificateRequestError(
                f"the request names {type(name).__name__} {name.value!r}: only DNS names and "
                "IP addresses (and its party URI) are certified"
            )
    return parse_hosts(hosts)


def check_request(csr: x509.CertificateSigningRequest) -> tuple[int, list[x509.GeneralName]]:
    """Check a request as the CA must before signing it; return its party id and hosts.

    Raises:
        CertificateRequestError: a key other than ECDSA P-256, a signature that does not verify
            (or not SHA-2), no valid party id (as
            :func:`~smpcloud.mpc.certs.party_id_from_names` reads it) or one outside 0..1000,
            a subject other than ``O=smpcloud, CN=smpcloud-party-<id>``, a name other than
            its party URI, DNS names and IP addresses, a request for CA powers or for an
            extension smpcloud does not issue.
    """
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        public_key = None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise CertificateRequestError(
            "the request's key is not ECDSA P-256, the only kind the mesh accepts "
            "(smpcloud certs request makes one)"
        )
    try:
        algorithm = csr.signature_hash_algorithm
        valid = isinstance(algorithm, _HASHES) and csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise CertificateRequestError(
            "the request's signature does not verify (it was altered, or not signed with "
            "SHA-2 by its own key)"
        )
    try:
        extensions = csr.extensions
    except ValueError:
        raise CertificateRequestError("the request has malformed extensions") from None
    _check_extensions(extensions)
    try:
        party = party_id_from_names(csr.subject, extensions)
    except InvalidInputError as exc:
        raise CertificateRequestError(f"the request holds no valid party id ({exc})") from None
    if party > MAX_PARTIES:
        raise CertificateRequestError(f"the request is for party {party}, outside 0..{MAX_PARTIES}")
    if csr.subject != endpoint_subject(party):
        raise CertificateRequestError(
            f"the request's subject must be exactly O=smpcloud, CN=smpcloud-party-{party}"
        )
    san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return party, _check_names(party, san)


def load_ca(
    directory: str | os.PathLike[str],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Read the deployment CA's key and certificate from ``directory`` (``create_ca``'s layout).

    Raises:
        FileNotFoundError: ``ca.pem`` or ``ca-key.pem`` is missing.
        InvalidInputError: either is not PEM, the key is not an unencrypted ECDSA key, it does
            not match the certificate, or the certificate is not a CA's.
    """
    files = CaFiles.at(directory)
    cert = load_certificate(files.cert)
    try:
        key = serialization.load_pem_private_key(files.key.read_bytes(), None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidInputError(f"{files.key}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise InvalidInputError(f"{files.key} does not match the CA certificate {files.cert}")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError):
        is_ca = False
    if not is_ca:
        raise InvalidInputError(
            f"{files.cert} is not a CA certificate (smpcloud certs ca makes one)"
        )
    return key, cert


def sign_request(
    ca_dir: str | os.PathLike[str],
    csr_path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    expected_id: int | None = None,
    expected_fingerprint: str | None = None,
    days: int = ENDPOINT_DAYS,
    overwrite: bool = False,
) -> SignedCertificate:
    """Sign a party's request with the deployment CA: issue its endpoint certificate.

    Checks the request (:func:`check_request`), then issues the certificate the one-machine
    path would (:func:`~smpcloud.mpc.certs.issue_certificate`) for the request's public key,
    party id and hosts. Nothing else of the request is copied, and no private key but the CA's
    is read. Check the printed fingerprint with the party first (see the module docstring).

    Args:
        ca_dir: the CA's directory (``ca.pem``, ``ca-key.pem``).
        csr_path: the party's ``party-<id>.csr``.
        out: the certificate to write (default: ``party-<id>.pem`` beside the request).
        expected_id: refuse a request for any other party id.
        expected_fingerprint: refuse a request whose public-key fingerprint is another
            (:func:`request_fingerprint`; case, colons and spaces do not matter): the one the
            party read out to the CA's operator over a channel the operator trusts.
        days: validity from now, 1..36500 (never past the CA's own end).
        overwrite: replace an existing certificate file (atomically).

    Returns:
        The party id and hosts certified, the certificate's path, end and fingerprint.

    Raises:
        CertificateRequestError: the request is not one the CA signs, or is for another id
            than ``expected_id`` or with another key than ``expected_fingerprint`` (nothing is
            written).
        InvalidInputError: bad ``days`` or ``expected_id``, a CA directory that holds no
            usable CA, or an expired CA.
        FileNotFoundError: the request or the CA's files are missing.
        FileExistsError: the certificate exists and ``overwrite`` is false.
    """
    check_days(days)
    if expected_id is not None:
        _check_party(expected_id, "the expected id")
    source = Path(csr_path)
    csr = load_request(source)
    try:
        party, hosts = check_request(csr)
    except CertificateRequestError as exc:
        raise CertificateRequestError(f"{source}: {exc}") from None
    if expected_id is not None and party != expected_id:
        raise CertificateRequestError(
            f"{source}: the request is for party {party}, not party {expected_id}"
        )
    if expected_fingerprint is not None:
        found = request_fingerprint(csr)
        if _hex_digits(found) != _hex_digits(expected_fingerprint):
            raise CertificateRequestError(
                f"{source}: the request's public-key fingerprint is {found}, not the one given: "
                f"it is not the request party {party} made"
            )
    target = Path(out) if out is not None else source.with_name(f"party-{party}.pem")
    if not overwrite:
        refuse_existing([target])
    ca_key, ca_cert = load_ca(ca_dir)
    now = datetime.datetime.now(datetime.UTC)
    if ca_cert.not_valid_after_utc <= now:
        raise InvalidInputError(
            f"the CA in {ca_dir} expired on {ca_cert.not_valid_after_utc:%Y-%m-%d}: make a new "
            "one (smpcloud certs ca) and have every party's request signed by it"
        )
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):  # check_request made sure
        raise CertificateRequestError(f"{source}: the request's key is not ECDSA P-256")
    cert = issue_certificate(party, public_key, ca_key, ca_cert, hosts, now=now, days=days)
    write_public_pem(target, cert.public_bytes(serialization.Encoding.PEM), overwrite=overwrite)
    return SignedCertificate(
        id=party,
        hosts=tuple(str(h.value) for h in hosts),
        cert=target,
        not_after=cert.not_valid_after_utc,
        fingerprint=request_fingerprint(cert),
    )


__all__ = [
    "MAX_REQUEST_BYTES",
    "CertificateRequestError",
    "RequestFiles",
    "SignedCertificate",
    "check_request",
    "create_request",
    "load_ca",
    "load_request",
    "request_fingerprint",
    "sign_request",
]
