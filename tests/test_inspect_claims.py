"""Claims read from saved outputs: one test per printed format, as notebooks really print them."""

from __future__ import annotations

import pytest

from grader.inspect.claims import find_claims, screen_text

BAR = "██████████"


def claims(*outputs: str, cell: int = 0):
    return find_claims([(cell, outputs)]).facts()


TORCHSUMMARY = """\
----------------------------------------------------------------
        Layer (type)               Output Shape         Param #
================================================================
            Conv2d-1            [-1, 16, 26, 26]             144
       BatchNorm2d-2            [-1, 16, 26, 26]              32
================================================================
Total params: 13,808
Trainable params: 13,808
Non-trainable params: 0
----------------------------------------------------------------
Input size (MB): 0.00
Params size (MB): 0.05
Estimated Total Size (MB): 0.87
----------------------------------------------------------------
"""

TORCHINFO = """\
==========================================================================================
Layer (type:depth-idx)                   Output Shape              Param #
==========================================================================================
Net                                      [1, 10]                   --
├─Conv2d: 1-1                            [1, 8, 26, 26]            72
==========================================================================================
Total params: 7,416
Trainable params: 7,416
Non-trainable params: 0
Total mult-adds (M): 0.52
==========================================================================================
"""

KERAS_SUMMARY = """\
=================================================================
conv2d_1 (Conv2D)            (None, 26, 26, 16)        160
batch_normalization_1 (Batc  (None, 26, 26, 16)        64
=================================================================
Total params: 13,936
Trainable params: 13,808
Non-trainable params: 128
_________________________________________________________________
"""

KERAS3_SUMMARY = """\
 Total params: 13,936 (54.44 KB)
 Trainable params: 13,808 (53.94 KB)
 Non-trainable params: 128 (512.00 B)
"""


class TestParams:
    def test_torchsummary_table(self):
        assert claims(TORCHSUMMARY).params == 13808

    def test_torchinfo_table_in_an_execute_result(self):
        assert claims(TORCHINFO).params == 7416

    def test_keras_summary_prefers_trainable_over_total(self):
        assert claims(KERAS_SUMMARY).params == 13808

    def test_keras3_summary_with_sizes_after_the_counts(self):
        assert claims(KERAS3_SUMMARY).params == 13808

    def test_non_trainable_line_is_not_the_trainable_count(self):
        assert claims("Total params: 9,000\nNon-trainable params: 64\n").params == 9000

    def test_hand_printed_count(self):
        assert claims("Number of parameters: 13808\n").params == 13808
        assert claims("Total number of trainable parameters = 7,416\n").params == 7416

    def test_last_summary_printed_wins(self):
        first = TORCHSUMMARY.replace("13,808", "24,962")
        assert claims(first, TORCHSUMMARY).params == 13808

    def test_params_size_line_is_not_a_count(self):
        assert claims("Params size (MB): 0.05\n").params is None


class TestAccuracy:
    def test_pytorch_test_set_line_uses_correct_over_total_not_the_rounded_percent(self):
        line = "\nTest set: Average loss: 0.0195, Accuracy: 9941/10000 (99%)\n\n"
        assert claims(line).accuracy == 99.41

    def test_test_set_epoch_accuracy_line(self):
        assert claims("Test set: Epoch Accuracy: 99.46\n").accuracy == 99.46

    def test_training_tqdm_bar_is_train_accuracy_and_ignored(self):
        bar = f"\rLoss=0.0312 Batch_id=468 Accuracy=99.12: 100%|{BAR}| 469/469 [00:20<00:00, 23.05it/s]\n"
        assert claims(bar).accuracy is None

    def test_test_loop_tqdm_bar_counts_only_its_final_redraw(self):
        frames = [
            f"Test: Loss=0.0150 Accuracy=99.80:  10%|{BAR[:1]}         | 8/79 [00:00<00:02, 30.1it/s]",
            f"Test: Loss=0.0201 Accuracy=99.43: 100%|{BAR}| 79/79 [00:02<00:00, 31.2it/s]",
        ]
        result = claims("\r" + "\r".join(frames) + "\n")
        assert (result.accuracy, result.last_accuracy) == (99.43, 99.43)

    def test_train_set_line_is_ignored(self):
        assert claims("Train set: Average loss: 0.0100, Accuracy: 59830/60000 (100%)\n").accuracy is None

    def test_label_nearest_before_the_number_decides(self):
        found = find_claims([(0, ["Epoch 3 Train Acc: 98.50 Test Acc: 99.10\nTest loss: 0.03 Train acc: 99.9\n"])])
        assert [claim.value for claim in found.accuracies] == [99.1]

    def test_keras_val_acc_fraction_becomes_percent(self):
        line = ("60000/60000 [==============================] - 12s 201us/step - loss: 0.0123 - acc: 0.9962 "
                "- val_loss: 0.0201 - val_acc: 0.9942\n")
        assert claims(line).accuracy == 99.42

    def test_tf_keras_val_accuracy(self):
        line = ("469/469 [==============================] - 5s 10ms/step - loss: 0.0213 - accuracy: 0.9931 "
                "- val_loss: 0.0187 - val_accuracy: 0.9944\n")
        assert claims(line).accuracy == 99.44

    def test_keras_progress_redrawn_with_backspaces(self):
        partial = " 128/60000 [..............................] - ETA: 2:10 - loss: 2.3012 - acc: 0.1016"
        final = ("60000/60000 [==============================] - 12s - loss: 0.03 - acc: 0.99 - val_loss: 0.02 "
                 "- val_acc: 0.9938")
        assert claims("Epoch 1/1\n" + partial + "\b" * len(partial) + "\r" + final + "\n").accuracy == 99.38

    def test_keras_evaluate_score_list(self):
        assert claims("[0.021234087606751175, 0.9942]").accuracy == 99.42

    def test_score_list_with_exponent(self):
        assert claims("[2.1234e-02, 0.9942]\n").accuracy == 99.42

    def test_list_that_is_not_loss_and_accuracy(self):
        assert claims("[12.5, 30.0]\n").accuracy is None

    @pytest.mark.parametrize("text",
                             ["Test accuracy\n0.994\n", "Test accuracy:\n\n0.994\n", "Test accuracy:\n99.4 %\n"])
    def test_bare_number_after_a_test_accuracy_line(self, text):
        assert claims(text).accuracy == 99.4

    def test_bare_number_split_across_outputs_of_one_cell(self):
        assert claims("Test accuracy:\n", "0.9942").accuracy == 99.42

    def test_bare_number_without_the_label_line_is_nothing(self):
        assert claims("Test loss:\n0.994\n").accuracy is None

    def test_test_accuracy_on_one_line(self):
        assert claims("Test score: 0.0301\nTest accuracy: 0.9942\n").accuracy == 99.42

    def test_pytorch_tutorial_sentence(self):
        assert claims("Accuracy of the network on the 10000 test images: 99 %\n").accuracy == 99.0

    def test_validation_accuracy_in_percent(self):
        assert claims("Validation accuracy = 99.48%\n").accuracy == 99.48

    def test_best_and_last_over_epochs(self):
        lines = [f"\nTest set: Average loss: 0.02, Accuracy: {c}/10000 ({c / 100:.0f}%)\n" for c in (9921, 9946, 9941)]
        result = claims(*lines)
        assert (result.accuracy, result.last_accuracy) == (99.46, 99.41)

    def test_coloured_output(self):
        assert claims("\x1b[32mTest accuracy: 99.43%\x1b[0m\n").accuracy == 99.43

    def test_impossible_values_are_not_claims(self):
        assert claims("Test accuracy: 140\nTest set: Accuracy: 10001/10000\n").accuracy is None


class TestEpochs:
    def test_zero_based_epoch_lines(self):
        assert claims("".join(f"EPOCH: {e}\n" for e in range(15))).epochs == 15

    def test_keras_epoch_of_total_uses_the_epochs_run(self):
        assert claims("Epoch 1/20\nEpoch 2/20\nEpoch 3/20\n").epochs == 3

    def test_tqdm_description_with_epoch(self):
        assert claims(f"\rEpoch 7: 100%|{BAR}| 469/469 [00:20<00:00]\n").epochs == 7

    def test_without_epoch_numbers_count_test_evaluations(self):
        line = "Test set: Average loss: 0.02, Accuracy: 9930/10000 (99%)\n"
        assert claims(line * 4).epochs == 4

    def test_settings_printed_are_not_epochs(self):
        assert claims("#epochs: 15\nEpochs = 20\nepoch_loss 3\n").epochs is None

    def test_nothing_printed(self):
        assert claims("").epochs is None


def test_claims_remember_the_cell_and_line():
    found = find_claims([(3, ["Total params: 100\n"]), (7, ["Test accuracy: 99.5\n"])])
    assert [(c.cell, c.line) for c in found.params] == [(3, "Total params: 100")]
    assert [(c.cell, c.value) for c in found.accuracies] == [(7, 99.5)]


def test_screen_text_keeps_the_last_redraw_of_each_line():
    assert screen_text("a 10%\rb 50%\rc 100%\r\nnext\r\n") == "c 100%\nnext\n"
