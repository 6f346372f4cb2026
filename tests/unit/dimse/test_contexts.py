"""What the SCP negotiates, and what the pure DIMSE modules import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydicom import uid

from archive.dimse import contexts

PURE_MODULES = ("contexts", "files", "status")


def test_every_required_storage_class_is_supported_with_every_syntax():
    supported = {cx.abstract_syntax: cx for cx in contexts.supported_contexts()}
    for sop_class in contexts.REQUIRED_STORAGE_SOP_CLASSES:
        context = supported[sop_class]
        assert context.scu_role and context.scp_role  # C-STORE in, C-GET out
        for syntax in (
            uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.DeflatedExplicitVRLittleEndian,
            uid.JPEGBaseline8Bit, uid.JPEGLossless, uid.JPEGLosslessSV1, uid.JPEG2000Lossless,
            uid.JPEG2000, uid.RLELossless, uid.JPEGLSLossless,
        ):
            assert syntax in context.transfer_syntax


def test_more_storage_classes_than_a_requestor_could_propose():
    # Supported contexts have no 128 cap; the SCP must not be limited to pynetdicom's
    # StoragePresentationContexts (120 classes).
    assert len(contexts.STORAGE_SOP_CLASSES) > 128


def test_contexts_for_sending_keep_each_stored_syntax_apart():
    ct, stl = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.104.3"
    proposed = contexts.storage_contexts_for(
        [(ct, uid.JPEG2000Lossless), (ct, uid.JPEG2000Lossless), (stl, uid.ExplicitVRLittleEndian)]
    )
    assert sorted((cx.abstract_syntax, cx.transfer_syntax) for cx in proposed) == sorted([
        (ct, [uid.JPEG2000Lossless]),
        (ct, [uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian]),
        (stl, [uid.ExplicitVRLittleEndian]),
    ])


def test_contexts_for_sending_refuse_more_than_the_cap():
    pairs = [(f"1.2.3.{n}", uid.ExplicitVRLittleEndian) for n in range(129)]
    with pytest.raises(ValueError, match="more than 128"):
        contexts.storage_contexts_for(pairs)


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_no_django(module):
    path = Path(contexts.__file__).with_name(f"{module}.py")
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
    relative = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]
    assert not [n for n in names if n.split(".")[0] == "django"]
    assert set(relative) <= {"errors", "contexts", "files", "status"}
