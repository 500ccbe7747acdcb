"""The one exception type xnn raises for bad models, bad inputs and unsupported features."""


class XnnError(ValueError):
    """Raised for anything wrong with a model file, an input or an unsupported feature.

    The message names what was wrong (op, version, node, tensor) and, where there is one, what to do.
    """
# XnnError subclasses ValueError so code written against tf.lite's Interpreter, which raises
# ValueError for bad inputs, keeps working when it swaps in xnn.Interpreter.
