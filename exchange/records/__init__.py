"""Record kinds, their JSON Schemas, identifier checks and the record container (sans-I/O).

A record is the structured content a DSL, a front door or a health team exchanges:
``referral``, ``cp-file-transfer``, ``lac-record``, ``outcome`` and
``information-request`` (docs/records.md). :func:`validate_record` checks a JSON document
against its kind's versioned schema and returns a :class:`Record`;
:func:`encode_container` and :func:`decode_container` put a record and its documents into
the bytes an envelope seals, and check the manifest's digests on the way out.
"""

from exchange.records.attachments import (
    CONTENT_TYPES,
    L_CONTAINER,
    MAX_CONTAINER_LEN,
    MAX_FILE_NAME_LEN,
    Attachment,
    Container,
    content_matches,
    decode_container,
    encode_container,
    max_container_len,
    sanitise_file_name,
)
from exchange.records.errors import ContainerError, Problem, RecordError, RecordValidationError
from exchange.records.identifiers import (
    InvalidIdentifierError,
    LaCode,
    NhsNumber,
    OdsCode,
    Upn,
    Urn,
    nhs_check_digit,
    upn_check_letter,
    validate_la_code,
    validate_nhs_number,
    validate_ods_code,
    validate_upn,
    validate_urn,
)
from exchange.records.kinds import (
    KINDS,
    MAX_ATTACHMENT_SIZE,
    MAX_ATTACHMENTS,
    KindSpec,
    kind_spec,
    load_schema,
)
from exchange.records.validate import MAX_PROBLEMS, Record, validate_record

__all__ = [
    "CONTENT_TYPES",
    "KINDS",
    "L_CONTAINER",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENT_SIZE",
    "MAX_CONTAINER_LEN",
    "MAX_FILE_NAME_LEN",
    "MAX_PROBLEMS",
    "Attachment",
    "Container",
    "ContainerError",
    "InvalidIdentifierError",
    "KindSpec",
    "LaCode",
    "NhsNumber",
    "OdsCode",
    "Problem",
    "Record",
    "RecordError",
    "RecordValidationError",
    "Upn",
    "Urn",
    "content_matches",
    "decode_container",
    "encode_container",
    "kind_spec",
    "load_schema",
    "max_container_len",
    "nhs_check_digit",
    "sanitise_file_name",
    "upn_check_letter",
    "validate_la_code",
    "validate_nhs_number",
    "validate_ods_code",
    "validate_record",
    "validate_upn",
    "validate_urn",
]
