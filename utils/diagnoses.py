"""The mistakes the course's checks recognise, each under a stable code, so that the grader can count them.

A check that recognises a mistake raises `mistake(message, code)`: an AssertionError like any failed
test (a student's notebook shows the message) that also carries the code. The grader runs the
hidden tests' checks again in its own process (autograders/trusted.py) and records the codes beside
the message in the results JSON, so the class report (`course report`) counts mistakes without
reading any text back. `DIAGNOSES` says in a line what each code means. This module imports nothing.
"""

from __future__ import annotations

DIAGNOSES: dict[str, str] = {
    # comparing values and gradients (utils.checks)
    "grad-not-zeroed": "gradients accumulate over backward() calls, never zeroed (a gradient exactly k times the expected one)",
    "grad-all-zero": "every entry of a gradient is 0: zeroed after backward(), or the input went through detach()/no_grad()",
    "grad-none": "a gradient is None: the tensor is not connected to the output, lacks requires_grad, or backward() never ran",
    "sign-flipped": "the sign is flipped: a local derivative's sign, or the update step's",
    "transposed": "the transpose of the expected value: the order of a matrix product (X.T @ g, not g.T @ X)",
    "factor-missing": "exactly 1/k of the expected value: a factor is missing (the power rule)",
    "factor-repeated": "exactly k times the expected value: a constant factor counted twice",
    "constant-factor": "off by the same factor everywhere: a constant (a mean for a sum, a 1/2, a step size)",
    "classes-swapped": "the two classes are swapped: which class is labelled 1",
    "nan": "NaN where the reference has none: 0/0, sqrt or log of a negative number, inf - inf",
    "inf": "inf where the reference has none: a division by zero or an overflowing exp",
    "summed-over-batch": "one number where a tensor was expected: summed (or .item()) over the batch",
    "not-summed": "a tensor where one number was expected: not summed over the batch",
    "reshaped": "the right number of entries in the wrong shape: a reshape, view, squeeze or unsqueeze",
    "wrong-shape": "a shape that does not match: the dimensions summed over, or which examples were used",
    "not-float": "an integer tensor where floats were expected (3 for 3.0)",
    "value-none": "None where a result was expected: the function does not return it",
    "not-tensor": "an answer that is not a tensor or a number",
    "mismatch": "wrong values with no familiar pattern",
    # backward passes, written or repaired by hand (and named by the exercises' hidden tests)
    "no-chain-factor": "a backward leaves out the chain factor: not multiplied by the incoming gradient (out.grad, grad_output)",
    "no-history": "a backward's result has no history (no_grad, detach, .item()), so it cannot be differentiated again",
    "broadcast-wrong-axis": "the incoming gradient broadcast along the wrong dimension (unsqueeze(-1))",
    "gradcheck-failed": "torch.autograd.gradcheck disagrees: the backward does not match finite differences",
    "gradcheck-error": "torch.autograd.gradcheck could not run the function: it raised an error",
    "in-place-saved": "a tensor that autograd saved for backward was changed in place (through .data?)",
    "update-not-in-place": "the parameters were replaced by an update instead of changed in place under no_grad()",
    "detach-wrong": "the wrong tensor detached (or none, or both)",
    "shape-mismatch": "a shape mismatch inside the code: which side X.T goes, the order of a matrix product",
    "sum-not-mean": "the sum over the batch where the mean was asked for",
    "overflow": "exp overflowed to inf or NaN: the max-shift trick is missing",
    "loss-grew": "the loss grew during descent: the update's sign, or the size of the gradient",
    "losses-shifted": "the loss recorded after each step instead of before it",
    "unused-layers": "layers made in __init__ but not used in forward(): their parameters get no gradient",
    "train-mode": "predictions made in training mode: model.eval() is missing (dropout stays on)",
    # class predictions (utils.checks.assert_accuracy)
    "scores-not-labels": "scores or probabilities where class labels were expected (argmax, logit > 0)",
    "unknown-labels": "labels that never occur among the true ones",
    "constant-prediction": "the same label for every example: the model learned nothing (optimizer.step()?)",
    "untrained": "accuracy about what guessing gives: the training loop does not train",
    "undertrained": "accuracy below the bar though the model learned something: unzeroed gradients, too few epochs",
    # the guards that visible tests run the student's code in (the grader checks the rules itself: rule-broken)
    "used-autograd": "autograd called where the backward pass is to be derived by hand",
    "used-forbidden-call": "a torch function called that the exercise asks the student to write",
    "used-torch": "torch called where the code works with Python floats alone",
    # the scalar engine of exercise 06 (utils.expressions, utils.engine_mistakes, utils.engine_training)
    "engine-malformed": "the engine's answer is not in the form the test records",
    "engine-forward": "a forward value of the engine is wrong",
    "engine-overwrite": "gradients overwritten (self.grad = ...) instead of accumulated (+=) at a node used twice",
    "engine-recursive": "backward() walks the graph recursively without a topological order",
    "engine-shared": "wrong gradients where a node is used more than once (not summed over its uses, or out of order)",
    "engine-grads": "wrong gradients with no familiar pattern: a local derivative or the chain factor",
    "order-not-list": "topological_order() returns no list",
    "order-foreign": "the order holds things that are not Values of the graph",
    "order-duplicate": "a Value appears more than once in the order",
    "order-incomplete": "the order leaves out Values the output depends on",
    "order-not-last": "the order does not end with the output",
    "order-parent-after": "a Value comes before one it was computed from",
    "recursion-too-deep": "a recursive walk runs past Python's recursion limit on a deep graph",
    "recursion-limit-changed": "the recursion limit was raised instead of walking the graph with a loop",
    "zero-grad-incomplete": "zero_grad() leaves some grads of the graph other than 0",
    "zero-grad-unstable": "backward() after zero_grad() gives other gradients than the first backward()",
    "training-malformed": "train() does not return the parameters and the losses as floats",
    "training-losses": "the right parameters but wrong losses: the loss of each step's own backward()",
    "training-network": "the loss before the first step is wrong: the network is not the one described",
    "training-stuck": "the parameters never move: zero gradients, or the steps never reach the parameters",
    "training-uphill": "the steps go uphill: descent moves against the gradient",
    "training-steps": "the first loss is right but the gradients or the steps are not",
    "training-blew-up": "the parameters blew up (OverflowError in math.exp): gradients far too large",
}
for _op in ("add", "mul", "pow", "relu", "tanh", "exp", "log", "sigmoid", "sub", "div", "neg"):
    DIAGNOSES[f"engine-derivative-{_op}"] = f"the local derivative of {_op} in the engine is wrong"


def mistake(message: str, *codes: str) -> AssertionError:
    """An AssertionError, as any failed test raises (a notebook shows `AssertionError: message`), that also carries
    the codes of the mistakes it recognised."""
    error = AssertionError(message)
    error.codes = codes
    return error


def codes_of(error: BaseException) -> list[str]:
    """The known diagnosis codes an error carries (none for a plain AssertionError)."""
    codes = getattr(error, "codes", ())
    return [c for c in codes if type(c) is str and c in DIAGNOSES] if type(codes) is tuple else []


def describe(code: str) -> str:
    """What a diagnosis code means, in a line."""
    return DIAGNOSES.get(code, code)
