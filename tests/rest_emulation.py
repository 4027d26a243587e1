"""TF Serving's REST ``:predict`` JSON mapping, re-implemented in Python for tests.

No TF Serving binary can be installed on the test machines, so this module
reproduces what ``tensorflow_serving/util/json_tensor.cc``
(``FillPredictRequestFromJson`` and ``MakeJsonFromTensors``) does with a
request body, calls the loaded SavedModel signature with the resulting
tensors, and formats the response the same way:

* row format ``{"signature_name": s, "instances": [...]}``: a non-empty list;
  either plain values (only for a signature with exactly one input) or
  objects with exactly the signature's input names. Every instance of an
  input must have the same shape; instances are stacked along a new batch
  dimension. Response ``{"predictions": [...]}``: one entry per row of the
  outputs (all outputs must share their first dimension), an object of the
  named outputs when there are several, the bare value when there is one.
* columnar format ``{"signature_name": s, "inputs": {...}}`` (or a bare value
  for a one-input signature): each input as its own tensor, any shapes.
  Response ``{"outputs": {...}}`` (or the bare value for one output).
* JSON -> dtype: float inputs take any number; int32 needs a JSON integer
  (``1.0`` is refused), int64 likewise; errors read ``JSON Value: 0.5 Type:
  Number is not of expected type: int32`` as in TF Serving.
* A failed request gives ``{"error": message}`` (TF Serving answers HTTP 400).
"""

import json

import numpy as np
import tensorflow as tf

_DTYPE_NAME = {tf.float32: "float", tf.float64: "double", tf.int32: "int32", tf.int64: "int64",
               tf.uint8: "uint8"}


class RestError(ValueError):
  pass


def _json_type(v):
  if v is None:
    return "Null"
  if isinstance(v, bool):
    return "True" if v else "False"
  if isinstance(v, (int, float)):
    return "Number"
  return {str: "String", list: "Array", dict: "Object"}[type(v)]


def _scalar(v, dtype):
  type_error = RestError(f"JSON Value: {json.dumps(v)} Type: {_json_type(v)} is not of expected "
                         f"type: {_DTYPE_NAME[dtype]}")
  if isinstance(v, bool) or not isinstance(v, (int, float)):
    raise type_error
  if dtype in (tf.float32, tf.float64):
    if isinstance(v, int) and dtype == tf.float32 and abs(v) > 2 ** 24 - 1:
      raise RestError(f"Cannot convert JSON value: {v} to float without loss of precision.")
    return float(v)
  if not isinstance(v, int):
    raise type_error                                   # rapidjson: 1.0 is a double, not an int
  bits = {tf.int32: 31, tf.uint8: 31, tf.int64: 63}[dtype]
  if not -2 ** bits <= v < 2 ** bits:
    raise type_error
  return v


def _shape(v):
  """GetDenseTensorShape: follow the first element of each nested list."""
  shape = []
  while isinstance(v, list):
    shape.append(len(v))
    if not v:
      break
    v = v[0]
  return shape


def _fill(v, level, shape, dtype, out):
  """FillTensorProto: every leaf at depth rank, every list of the expected size."""
  if not isinstance(v, list):
    if level != len(shape):
      raise RestError(f"JSON Value: {json.dumps(v)} found at incorrect level: {level + 1} in the "
                      f"JSON DOM. Expected at level: {len(shape)}")
    out.append(_scalar(v, dtype))
    return
  if level >= len(shape):
    raise RestError(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
  if len(v) != shape[level]:
    raise RestError(f"Encountered list at unexpected size: {len(v)} at level: {level} expected "
                    f"size: {shape[level]}")
  for item in v:
    _fill(item, level + 1, shape, dtype, out)


def _tensor(v, dtype):
  shape, values = _shape(v), []
  _fill(v, 0, shape, dtype, values)
  arr = np.array(values, dtype=dtype.as_numpy_dtype if dtype != tf.uint8 else np.int64)
  if dtype == tf.uint8:
    arr = arr.astype(np.uint8)                        # TensorProto int_val -> uint8: C++ cast
  return arr.reshape(shape), shape


def request_to_tensors(body, input_specs):
  """``(inputs, format)`` from a request body, for a signature's ``{name: TensorSpec}``."""
  doc = json.loads(body) if isinstance(body, str) else body
  if not isinstance(doc, dict):
    raise RestError(f"JSON Value: {json.dumps(doc)} Is not object")
  names = sorted(input_specs)
  if "instances" in doc and "inputs" in doc:
    raise RestError("Not formatted correctly expecting only one of 'inputs' or 'instances' keys "
                    "to exist")
  if "instances" in doc:
    inst = doc["instances"]
    if not isinstance(inst, list):
      raise RestError("Excepting 'instances' to be an list/array")
    if not inst:
      raise RestError("No values in 'instances' array")
    objects = isinstance(inst[0], dict)
    if not objects and len(names) > 1:
      raise RestError("instances is a plain list, but expecting list of objects as multiple input "
                      "tensors required as per tensorinfo_map")
    rows = {n: [] for n in names}
    shapes = {}
    for i, elem in enumerate(inst):
      if objects != isinstance(elem, dict):
        raise RestError(f"Expecting {'object' if objects else 'value/list'} but got "
                        f"{'list' if objects else 'object'} at item {i} of input list")
      item = elem if objects else {names[0]: elem}
      for key, value in item.items():
        if key not in input_specs:
          raise RestError(f"Failed to process element: {i} key: {key} of 'instances' list. "
                          f"Error: JSON object: does not have named input: {key}")
        try:
          arr, shape = _tensor(value, input_specs[key].dtype)
        except RestError as e:
          raise RestError(f"Failed to process element: {i} key: {key} of 'instances' list. "
                          f"Error: {e}") from None
        if key in shapes and shapes[key] != shape:
          raise RestError(f"Failed to process element: {i} key: {key} of 'instances' list. "
                          f"Error: Expecting shape {shapes[key]} but got: {shape}")
        shapes[key] = shape
        rows[key].append(arr)
      if sorted(item) != names:
        raise RestError(f"Failed to process element: {i} of 'instances' list. JSON object: "
                        f"{json.dumps(elem)[:80]} keys must be equal to: {','.join(names)}")
    return {n: np.stack(rows[n]) for n in names}, "row"
  if "inputs" in doc:
    val = doc["inputs"]
    if not isinstance(val, dict):
      if len(names) > 1:
        raise RestError("inputs is a plain value/list, but expecting an object as multiple input "
                        "tensors required as per tensorinfo_map")
      val = {names[0]: val}
    out = {}
    for n in names:
      if n not in val:
        raise RestError(f"Missing named input: {n} in 'inputs' object.")
      out[n] = _tensor(val[n], input_specs[n].dtype)[0]
    return out, "columnar"
  raise RestError("Missing 'inputs' or 'instances' key")


def tensors_to_response(outputs, fmt):
  """MakeJsonFromTensors: ``{"predictions": [...]}`` (row) or ``{"outputs": ...}`` (columnar)."""
  outputs = {k: np.asarray(v) for k, v in sorted(outputs.items())}
  if fmt == "columnar":
    if len(outputs) == 1:
      return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {k: v.tolist() for k, v in outputs.items()}}
  batch = None
  for k, v in outputs.items():
    if v.ndim == 0:
      raise RestError(f"Tensor name: {k} has no shape information ")
    if batch is not None and v.shape[0] != batch:
      raise RestError(f"Tensor name: {k} has inconsistent batch size: {v.shape[0]} expecting: "
                      f"{batch}")
    batch = v.shape[0]
  if len(outputs) == 1:
    return {"predictions": next(iter(outputs.values())).tolist()}
  return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(batch)]}


def predict(signatures, body):
  """``POST /v1/models/<model>:predict`` with ``body``; returns the decoded JSON response."""
  doc = json.loads(body) if isinstance(body, str) else body
  name = doc.get("signature_name", "serving_default") if isinstance(doc, dict) else ""
  try:
    if name not in signatures:
      raise RestError(f"Serving signature name: \"{name}\" not found in signature def")
    fn = signatures[name]
    inputs, fmt = request_to_tensors(doc, fn.structured_input_signature[1])
    out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    response = tensors_to_response({k: v.numpy() for k, v in out.items()}, fmt)
  except (RestError, tf.errors.InvalidArgumentError) as e:
    return {"error": getattr(e, "message", None) or str(e)}
  return json.loads(json.dumps(response))       # what a client parses from the wire
