"""Every malformed spec, operand mismatch or invalid option raises a ValueError naming the problem."""

from __future__ import annotations

import pytest
import torch

from tnn.algebra import conv_einsum, conv_einsum_expression, conv_einsum_path, parse_spec


def _t(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape)


SPEC_ERRORS = [
    ("ij,j$->i", r"invalid character '\$'"),
    ("ij,j1->i", r"invalid character '1'"),
    ("i...->i", r"invalid character '\.'"),
    ("ij->k", r"output index 'k'"),
    ("ij->ii", r"'i' is repeated in the output"),
    ("ij->ij|k", r"convolution index 'k' .* carried by no operand"),
    ("ij,j->i|j", r"convolution index 'j' .* absent from the output"),
    ("hh,h->h|h", r"convolution index 'h' is repeated within input term 0"),
    ("ij->ij|ii", r"'i' is listed more than once"),
    ("ij->i->j", r"more than one '->'"),
    ("ij->ij|i|j", r"more than one '\|'"),
    ("ij->ij|", r"no convolution index after it"),
    ("i-j->ij", r"stray '-' or '>'"),
    ("ij>ij", r"stray '-' or '>'"),
    ("ij->i,j", r"contains ','"),
]


@pytest.mark.parametrize("spec,message", SPEC_ERRORS)
def test_malformed_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(spec)


def test_spec_must_be_a_string():
    with pytest.raises(TypeError, match="spec must be a str"):
        parse_spec(3)  # type: ignore[arg-type]


SHAPE_ERRORS = [
    ("ij,jk->ik", [(2, 3), (4, 5)], {}, r"index 'j' has size 3 in operand 0 but size 4 in operand 1"),
    ("ii->i", [(2, 3)], {}, r"index 'i' has size 2 in operand 0 but size 3 in operand 0"),
    ("ij,jk->ik", [(2, 3)], {}, r"2 input term\(s\) .* but 1 operand\(s\)"),
    ("ij,jk->ik", [(2, 3), (3, 4, 5)], {}, r"operand 1 has 3 dimension\(s\) \(3, 4, 5\) but its term 'jk'"),
    ("bh,h->bh|h", [(2, 3), (5,)], {}, r"index 'h' has no valid output: signal size 3 .* filter size 5"),
    ("bh,h->bh|h", [(2, 3), (0,)], {}, r"convolution index 'h' has an empty filter \(size 0\) in operand 1"),
    ("bh,h->bh|h", [(2, 4), (3,)], {"padding": -1}, r"invalid padding -1 for convolution index 'h'"),
    ("bh,h->bh|h", [(2, 4), (3,)], {"padding": "half"}, r"invalid padding 'half'"),
    ("bh,h->bh|h", [(2, 4), (3,)], {"padding": (1, 2)}, r"padding \(1, 2\) has 2 entries .* 1 convolution"),
    ("bh,h->bh|h", [(2, 4), (3,)], {"padding": {"q": 1}}, r"padding is given for 'q', which is not"),
    ("bh,h->bh|h", [(2, 4), (3,)], {"stride": 0}, r"invalid stride 0 for convolution index 'h'"),
    ("bh,h->bh|h", [(2, 4), (3,)], {"stride": 1.5}, r"invalid stride 1.5"),
    ("bh,h->bh|h", [(2, 4), (3,)], {"dilation": -2}, r"invalid dilation -2"),
    ("bh,h->bh|h", [(2, 4), (3,)], {"circular": "yes"}, r"invalid circular 'yes'"),
    ("bh,h->bh|h", [(2, 4), (3,)], {"padding": "same", "stride": 2}, r"'same' needs stride 1 .* 'h'"),
    ("ij,jk->ik", [(2, 3), (3, 4)], {"optimize": "fastest"}, r"unknown optimize 'fastest'"),
    ("ij,jk->ik", [(2, 3), (3, 4)], {"optimize": [(0, 0)]}, r"path step 0 \(0, 0\) is invalid"),
    ("ij,jk,k->i", [(2, 3), (3, 4), (4,)], {"optimize": [(0, 1)]}, r"1 step\(s\) but 3 operands need 2"),
    ("ij,jk->ik", [(2, 3), (3, 4)], {"optimize": [(0, 1, 2)]}, r"path step 0 is \(0, 1, 2\)"),
]


@pytest.mark.parametrize("spec,shapes,kwargs,message", SHAPE_ERRORS)
def test_operand_and_option_errors(spec, shapes, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv_einsum(spec, *[_t(*s) for s in shapes], **kwargs)
    with pytest.raises(ValueError, match=message):
        conv_einsum_path(spec, *shapes, **kwargs)


def test_operand_type_errors():
    with pytest.raises(TypeError, match="operand 1 must be a torch.Tensor"):
        conv_einsum("ij,jk->ik", _t(2, 3), [[1.0]])
    with pytest.raises(TypeError, match="share one dtype"):
        conv_einsum("ij,jk->ik", _t(2, 3), _t(3, 4).double())
    with pytest.raises(TypeError, match="operand 0 must be a tensor or a shape"):
        conv_einsum_path("ij->ij", "ab")


def test_expression_checks_operand_count():
    expr = conv_einsum_expression("ij,jk->ik", (2, 3), (3, 4))
    with pytest.raises(ValueError, match="takes 2 operand"):
        expr(_t(2, 3))
    with pytest.raises(ValueError, match="index 'j' has size 3 in operand 0 but size 5"):
        expr(_t(2, 3), _t(5, 4))
