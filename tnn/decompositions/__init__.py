"""Torch-native tensor decompositions: CP, Tucker / partial Tucker, Tensor-Train, Tensor-Ring.

Every decomposition keeps the input's device and dtype, returns its factors together with the relative
reconstruction error ``||X - X_hat||_F / ||X||_F``, and is deterministic given ``random_state``.

- :func:`cp` (ALS), :func:`cp_to_tensor`, :func:`cp_normalize`, :func:`absorb_weights`
- :func:`tucker`, :func:`partial_tucker` (HOSVD + HOOI), :func:`tucker_to_tensor`
- :func:`tensor_train` (TT-SVD), :func:`tt_to_tensor`
- :func:`tensor_ring` (TR-SVD + optional ALS), :func:`tr_to_tensor`
- rank checks: :func:`validate_cp_rank`, :func:`validate_tucker_rank`, :func:`validate_tt_rank`,
  :func:`validate_tr_rank`, and the bounds :func:`max_tucker_rank`, :func:`max_tt_rank`
- helpers: :func:`relative_error`, :func:`unfold`, :func:`fold`, :func:`mode_dot`, :func:`khatri_rao`,
  :func:`mttkrp`
"""

from ._utils import fold, khatri_rao, mode_dot, mttkrp, multi_mode_dot, relative_error, truncated_svd, unfold
from .cp import CPTensor, absorb_weights, cp, cp_normalize, cp_to_tensor, validate_cp_rank
from .tr import TRTensor, tensor_ring, tr_to_tensor, validate_tr_rank
from .tt import TTTensor, max_tt_rank, tensor_train, tt_to_tensor, validate_tt_rank
from .tucker import (
    TuckerTensor,
    max_tucker_rank,
    partial_tucker,
    tucker,
    tucker_to_tensor,
    validate_tucker_rank,
)

__all__ = [
    "CPTensor",
    "TRTensor",
    "TTTensor",
    "TuckerTensor",
    "absorb_weights",
    "cp",
    "cp_normalize",
    "cp_to_tensor",
    "fold",
    "khatri_rao",
    "max_tt_rank",
    "max_tucker_rank",
    "mode_dot",
    "mttkrp",
    "multi_mode_dot",
    "partial_tucker",
    "relative_error",
    "tensor_ring",
    "tensor_train",
    "tr_to_tensor",
    "truncated_svd",
    "tt_to_tensor",
    "tucker",
    "tucker_to_tensor",
    "unfold",
    "validate_cp_rank",
    "validate_tr_rank",
    "validate_tt_rank",
    "validate_tucker_rank",
]
