"""What feedback pages may show: each test's result and message, never a hidden test's code."""

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool


class HideTestTracebacks(Preprocessor):
    """Shorten each test cell's error to `Name: message`.

    A traceback quotes the lines around the failure, hidden tests included (nbgrader issue #917);
    the message from utils.checks already says what went wrong and what to look at.
    """

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
