"""PBOC / JT/T 978 e-purse and EMV/qPBOC cryptography as pure functions (bytes in, bytes out).

Every layout follows ``card-protocol.md`` (the shared card protocol reference); each function cites
its section. Modules are private; import from ``card.crypto``.

* ``_des`` / ``_sm4``: block primitives (ECB).
* ``_mac``: ED/EP MAC (§1.4) and ISO 9797-1 algorithm 3 (§3).
* ``_kd``: card key diversification (§2.1, SM4 form §1.9).
* ``_purchase`` / ``_load`` / ``_tac``: e-purse purchase, load and TAC (§1.3-§1.8, §5.4).
* ``_emv``: ARQC / ARPC (§3).
* ``_apdu``: INITIALIZE responses and the command layouts that carry the MACs (§1.3, §1.6, §1.7).
"""

from card.crypto._apdu import (
    LoadInitResponse,
    PurchaseInitResponse,
    PurseType,
    credit_for_load_command,
    debit_for_purchase_command,
    initialize_for_load_command,
    initialize_for_purchase_command,
    parse_load_init_response,
    parse_purchase_init_response,
)
from card.crypto._common import TransactionType, encode_dt7, verify_mac
from card.crypto._des import des_ecb_decrypt, des_ecb_encrypt, tdes_ecb_decrypt, tdes_ecb_encrypt
from card.crypto._emv import (
    ArqcCvn01Inputs,
    arqc_cvn01_input,
    arqc_cvn17_input,
    cipher_from_iad,
    cvr_from_iad,
    derive_emv_common_session_key,
    derive_icc_master_key,
    derive_pboc_session_key,
    emv_diversification_data,
    generate_ac,
    generate_arpc_method1,
    issuer_authentication_data,
    verify_arqc,
)
from card.crypto._kd import (
    BlockCipher,
    DiversificationOrder,
    derive_card_key,
    derive_epurse_card_key,
    diversify_key,
    epurse_card_factor,
    epurse_issuer_factor,
)
from card.crypto._load import (
    LoadInputs,
    load_mac1,
    load_mac1_input,
    load_mac2,
    load_mac2_input,
    load_session_key,
    load_session_key_input,
    verify_load_mac1,
)
from card.crypto._mac import epurse_mac, iso9797_pad_method2, retail_mac
from card.crypto._purchase import (
    PurchaseInputs,
    purchase_mac1,
    purchase_mac1_input,
    purchase_mac2,
    purchase_mac2_input,
    purchase_session_key,
    purchase_session_key_input,
)
from card.crypto._sm4 import sm4_ecb_decrypt, sm4_ecb_encrypt
from card.crypto._tac import (
    QR_TAC_ISSUER_FACTOR,
    QR_TAC_RECORD_TYPE,
    QrTacInputs,
    derive_qr_tac_key,
    purchase_tac,
    purchase_tac_input,
    purchase_tac_under,
    qr_tac,
    qr_tac_input,
    tac_key,
)

__all__ = [
    "QR_TAC_ISSUER_FACTOR",
    "QR_TAC_RECORD_TYPE",
    "ArqcCvn01Inputs",
    "BlockCipher",
    "DiversificationOrder",
    "LoadInitResponse",
    "LoadInputs",
    "PurchaseInitResponse",
    "PurchaseInputs",
    "PurseType",
    "QrTacInputs",
    "TransactionType",
    "arqc_cvn01_input",
    "arqc_cvn17_input",
    "cipher_from_iad",
    "credit_for_load_command",
    "cvr_from_iad",
    "debit_for_purchase_command",
    "derive_card_key",
    "derive_emv_common_session_key",
    "derive_epurse_card_key",
    "derive_icc_master_key",
    "derive_pboc_session_key",
    "derive_qr_tac_key",
    "des_ecb_decrypt",
    "des_ecb_encrypt",
    "diversify_key",
    "emv_diversification_data",
    "encode_dt7",
    "epurse_card_factor",
    "epurse_issuer_factor",
    "epurse_mac",
    "generate_ac",
    "generate_arpc_method1",
    "initialize_for_load_command",
    "initialize_for_purchase_command",
    "iso9797_pad_method2",
    "issuer_authentication_data",
    "load_mac1",
    "load_mac1_input",
    "load_mac2",
    "load_mac2_input",
    "load_session_key",
    "load_session_key_input",
    "parse_load_init_response",
    "parse_purchase_init_response",
    "purchase_mac1",
    "purchase_mac1_input",
    "purchase_mac2",
    "purchase_mac2_input",
    "purchase_session_key",
    "purchase_session_key_input",
    "purchase_tac",
    "purchase_tac_input",
    "purchase_tac_under",
    "qr_tac",
    "qr_tac_input",
    "retail_mac",
    "sm4_ecb_decrypt",
    "sm4_ecb_encrypt",
    "tac_key",
    "tdes_ecb_decrypt",
    "tdes_ecb_encrypt",
    "verify_arqc",
    "verify_load_mac1",
    "verify_mac",
]
