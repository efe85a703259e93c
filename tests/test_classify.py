"""dds.evaluation.classify.predictions: the format of the predictions table the stages write."""

import numpy as np
import torch

from dds.evaluation.classify import predictions
from dds.io import ImageSet


def test_predictions_have_one_row_per_image_in_order(model):
    gen = torch.Generator().manual_seed(0)
    data = ImageSet(
        idx=torch.tensor([1796, 0, 5, 42, 7, 3]),
        labels=torch.tensor([9, 0, 5, 2, 7, 3]),
        images=torch.rand(6, 1, 8, 8, generator=gen),
    )
    table = predictions(model, data, 4, "cpu")
    assert list(table.columns) == ["idx", "label", "pred", "correct", "logits"]
    np.testing.assert_array_equal(table["idx"].to_numpy(), data.idx.numpy())
    np.testing.assert_array_equal(table["label"].to_numpy(), data.labels.numpy())
    np.testing.assert_array_equal(table["correct"].to_numpy(), (table["pred"] == table["label"]).to_numpy())
    np.testing.assert_array_equal(table["pred"].to_numpy(), np.stack(table["logits"]).argmax(1))
