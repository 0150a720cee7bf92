"""§0.1–§0.4 known answers: canonical JSON text and digests, with the expected hex written out by hand.

Each expected canonical string is written by hand, and its sha256 was computed with hashlib over that
string (not over canonical_json's output); the test checks both, so the digests are independent.
"""

from __future__ import annotations

import hashlib
import math

import pytest

from ordinance.contract.canonical import ZERO_DIGEST, canonical_bytes, canonical_json, digest, plan_digest, run_id
from ordinance.contract.validate import parse_plan

KNOWN = [
    (  # nested objects: keys sorted at every level, arrays keep their order
        {"b": 1, "a": {"y": False, "x": [3, {"n": True, "m": None}]}},
        '{"a":{"x":[3,{"m":null,"n":true}],"y":false},"b":1}',
        "f7fdc18c9a1ac8e7a07f07c38e38913f525329f8fa63c9b4fadda0063b805ce5",
    ),
    (  # non-ASCII stays raw UTF-8 (ensure_ascii=False)
        {"zh": "部署", "name": "déploiement", "emoji": "🚀"},
        '{"emoji":"🚀","name":"déploiement","zh":"部署"}',
        "bef1c0ca317a6ee69ecae0fb468db58076962e7d648ae748f7d42eb205e89fc9",
    ),
    (  # control characters, quotes and backslashes are escaped
        {"q": 'say "hi"\\', "ctl": "\x01\n\t"},
        '{"ctl":"\\u0001\\n\\t","q":"say \\"hi\\"\\\\"}',
        "6640b1cca0267ecdd96482af16da34352ccf1ca8541b22746b2cb7d334d34031",
    ),
    (  # numbers print as Python's json does: 1.0 stays a float, big ints stay exact
        {"one": 1.0, "f": 1.5, "neg": -0.25, "sci": 1e16, "small": 1e-7, "big": 2**53 + 1},
        '{"big":9007199254740993,"f":1.5,"neg":-0.25,"one":1.0,"sci":1e+16,"small":1e-07}',
        "f21c66cac1bdacb21766011e005096a28994eb7491b60cc6c5e1c871e5112ec6",
    ),
    (  # keys sort by code point: uppercase, then lowercase, then non-ASCII
        {"z": 4, "é": 5, "a": 3, "Z": 2, "A": 1},
        '{"A":1,"Z":2,"a":3,"z":4,"é":5}',
        "596688dd9573f861ccc370bd595276aed320baf313d188acd011a8b9fbe91075",
    ),
    (
        {"s": "", "o": {}, "l": []},
        '{"l":[],"o":{},"s":""}',
        "5e4fa172ee0393faff0de8bef28f78089d7afd9a089c54b4402318d087cc2a50",
    ),
]


@pytest.mark.parametrize("value,text,hexdigest", KNOWN, ids=["nested", "unicode", "escapes", "numbers", "order", "empty"])
def test_canonical_json_and_digest_known_answers_R_0_1_R_0_2(value, text, hexdigest):
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == hexdigest  # the expectation is self-consistent
    assert canonical_json(value) == text
    assert canonical_bytes(value) == text.encode("utf-8")
    assert digest(value) == "sha256:" + hexdigest


def test_digest_is_lowercase_hex_with_prefix_R_0_2():
    d = digest({"x": 1})
    assert d.startswith("sha256:") and len(d) == 71 and d[7:] == d[7:].lower()
    assert ZERO_DIGEST == "sha256:" + "0" * 64


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_json_refuses_nan_and_infinity_R_0_1(bad):
    with pytest.raises(ValueError):
        canonical_json({"x": bad})


PLAN_DOC = {
    "id": "00000000-0000-4000-8000-000000000001", "version": 1, "name": "p", "created_at": 1,
    "steps": [{"id": "00000000-0000-4000-8000-000000000002", "action": "control.noop"}],
    "context_requirements": ["T"],
}
PLAN_CANONICAL = ('{"context_requirements":["T"],"created_at":1,"id":"00000000-0000-4000-8000-000000000001","name":"p",'
                  '"steps":[{"action":"control.noop","id":"00000000-0000-4000-8000-000000000002"}],"version":1}')
PLAN_HEX = "3b2a7237761209f47dc1d758c1d65e7545baa8b4872ebf8b8baa2ad97b681cb7"
RUN_HEX = "01928876763da66b12577e91f92fee18783724d2029e0cfedf30354e97d2e816"


def test_plan_digest_known_answer_for_document_and_model_R_0_3():
    assert hashlib.sha256(PLAN_CANONICAL.encode()).hexdigest() == PLAN_HEX
    assert canonical_json(PLAN_DOC) == PLAN_CANONICAL
    assert plan_digest(PLAN_DOC) == "sha256:" + PLAN_HEX
    assert plan_digest(parse_plan(PLAN_DOC)) == "sha256:" + PLAN_HEX


def test_run_id_known_answer_R_0_4():
    execution_id = "00000000-0000-4000-8000-000000000003"
    text = '{"execution_id":"00000000-0000-4000-8000-000000000003","plan":"sha256:%s"}' % PLAN_HEX
    assert hashlib.sha256(text.encode()).hexdigest() == RUN_HEX
    assert run_id("sha256:" + PLAN_HEX, execution_id) == "sha256:" + RUN_HEX


def test_key_order_and_whitespace_do_not_change_the_digest_R_0_3():
    reordered = dict(reversed(list(PLAN_DOC.items())))
    assert plan_digest(reordered) == plan_digest(PLAN_DOC)
