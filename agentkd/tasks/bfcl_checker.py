"""BFCL's AST checker for the simple and multiple categories (Python), ported.

A port of ``bfcl_eval/eval_checker/ast_eval/ast_checker.py`` (bfcl-eval 2026.3.23): ``ast_checker``,
``simple_function_checker``, ``multiple_function_checker``, ``type_checker``, ``standardize_string``
and the string/list/dict/list-of-dict checkers, for Python only. The original cannot be imported
without BFCL's model handlers (anthropic, openai...), which it needs only to look up whether a model
turns dots in function names into underscores; our tool names cannot hold dots, so that lookup is
always "yes" here, exactly as for BFCL's OpenAI-style function-calling models.

Results are BFCL's dicts: ``{"valid": bool, "error": [...], "error_type": str}``.
"""

from __future__ import annotations

import re
from typing import Any

PYTHON_TYPE_MAPPING: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool,
    "array": list, "tuple": list, "dict": dict, "any": str,
}
PYTHON_NESTED_TYPE_CHECK_LIST = ["array", "tuple"]
Result = dict[str, Any]


def fc_name(function_name: str) -> str:
    """How function-calling models name a BFCL function: dots become underscores."""
    return re.sub(r"\.", "_", function_name)


def ast_checker(func_description: list[dict[str, Any]], model_output: list[dict[str, Any]],
                possible_answer: list[dict[str, Any]], test_category: str) -> Result:
    """Check decoded calls ``[{name: {arg: value}}]`` against BFCL's possible answers."""
    if "parallel" in test_category:
        raise NotImplementedError("the parallel categories are not ported")
    if "multiple" in test_category:
        return multiple_function_checker(func_description, model_output, possible_answer)
    if len(model_output) != 1:
        return {"valid": False, "error": ["Wrong number of functions."],
                "error_type": "simple_function_checker:wrong_count"}
    return simple_function_checker(func_description[0], model_output[0], possible_answer[0])


def find_description(func_descriptions: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for func_description in func_descriptions:
        if func_description["name"] == name:
            return func_description
    return None


def get_possible_answer_type(possible_answer: list[Any]) -> type | None:
    for answer in possible_answer:
        if answer != "":  # optional parameter
            return type(answer)
    return None


def type_checker(param: str, value: Any, possible_answer: list[Any], expected_type_description: str,
                 expected_type_converted: type, nested_type_converted: type | None) -> Result:
    # Nested types are checked one level deep only, as in BFCL.
    result: Result = {"valid": True, "error": [], "is_variable": False, "error_type": "type_error:simple"}
    is_variable = False
    possible_answer_type = get_possible_answer_type(possible_answer)
    if possible_answer_type is not None and possible_answer_type != expected_type_converted:
        is_variable = True  # a variable name given as a string where a value was expected
    if type(value) is expected_type_converted:
        if nested_type_converted is None:
            result["is_variable"] = is_variable
            return result
        values: Any = value  # (``type(value) is ...`` narrowed it to ``object``)
        for possible_answer_item in possible_answer:
            flag = True
            if type(possible_answer_item) is list:
                for value_item in values:
                    checker_result = type_checker(param, value_item, possible_answer_item,
                                                  str(nested_type_converted), nested_type_converted, None)
                    if not checker_result["valid"]:
                        flag = False
                        break
            if flag:
                return {"valid": True, "error": [], "is_variable": is_variable}
        result["valid"] = False
        result["error"] = [
            f"Nested type checking failed for parameter {param!r}. Expected outer type {expected_type_description} "
            f"with inner type {nested_type_converted!s}. Parameter value: {value!r}."
        ]
        result["error_type"] = "type_error:nested"
    if possible_answer_type is not None and type(value) is possible_answer_type:
        result["is_variable"] = True
        return result
    result["valid"] = False
    result["error"].append(f"Incorrect type for parameter {param!r}. Expected type {expected_type_description}, "
                           f"got {type(value).__name__}. Parameter value: {value!r}.")
    result["error_type"] = "type_error:simple"
    return result


def standardize_string(input_string: str) -> str:
    """Lower case, without spaces and ``,./-_*^``, single quotes as double (BFCL forgives formatting)."""
    return re.sub(r"[ \,\.\/\-\_\*\^]", "", input_string).lower().replace("'", '"')


def string_checker(param: str, model_output: str, possible_answer: list[Any]) -> Result:
    options = [standardize_string(a) for a in possible_answer if type(a) is str]
    if standardize_string(model_output) not in options:
        return {"valid": False,
                "error": [f"Invalid value for parameter {param!r}: {model_output!r}. "
                          f"Expected one of {possible_answer}. Case insensitive."],
                "error_type": "value_error:string"}
    return {"valid": True, "error": []}


def list_checker(param: str, model_output: list[Any], possible_answer: list[Any]) -> Result:
    output = [standardize_string(v) if type(v) is str else v for v in model_output]
    options = [[standardize_string(v) if type(v) is str else v for v in answer] for answer in possible_answer]
    if output not in options:
        return {"valid": False,
                "error": [f"Invalid value for parameter {param!r}: {model_output!r}. "
                          f"Expected one of {possible_answer}."],
                "error_type": "value_error:list/tuple"}
    return {"valid": True, "error": []}


def dict_checker(param: str, model_output: dict[str, Any], possible_answers: list[Any]) -> Result:
    # Flat dictionaries only, as in BFCL (its data has no nested ones).
    result: Result = {"valid": False, "error": [], "error_type": "dict_checker:unclear"}
    for possible_answer in possible_answers:
        if possible_answer == "":
            continue
        result = {"valid": False, "error": [], "error_type": "dict_checker:unclear"}
        flag = True
        for key, value in model_output.items():
            if key not in possible_answer:
                result["error"].append(f"Unexpected dict key parameter: '{key}'.")
                result["error_type"] = "value_error:dict_key"
                flag = False
                break
            standardized = standardize_string(value) if type(value) is str else value
            options = [standardize_string(a) if type(a) is str else a for a in possible_answer[key]]
            if standardized not in options:
                result["error"].append(f"Invalid value for parameter {key!r}: {value!r}. Expected one of {options}.")
                result["error_type"] = "value_error:dict_value"
                flag = False
                break
        for key, value in possible_answer.items():
            if key not in model_output and "" not in value:
                result["error"].append(f"Missing dict key parameter: '{key}'.")
                result["error_type"] = "value_error:dict_key"
                flag = False
                break
        if flag:
            return {"valid": True, "error": []}
    return result


def list_dict_checker(param: str, model_output: list[Any], possible_answers: list[Any]) -> Result:
    # The order of the dictionaries must match the order of the possible answer's.
    result: Result = {"valid": False, "error": [], "error_type": "list_dict_checker:unclear"}
    for answer in possible_answers:
        flag = True
        if len(model_output) != len(answer):
            result = {"valid": False, "error": ["Wrong number of dictionaries in the list."],
                      "error_type": "value_error:list_dict_count"}
            continue
        for item, expected in zip(model_output, answer, strict=True):
            result = dict_checker(param, item, [expected])
            if not result["valid"]:
                flag = False
                break
        if flag:
            return {"valid": True, "error": []}
    return result


def simple_function_checker(func_description: dict[str, Any], model_output: dict[str, Any],
                            possible_answer: dict[str, Any]) -> Result:
    possible_answer = next(iter(possible_answer.values()))
    func_name = fc_name(func_description["name"])
    param_details = func_description["parameters"]["properties"]
    required_params = func_description["parameters"]["required"]
    result: Result = {"valid": True, "error": [], "error_type": "simple_function_checker:unclear"}
    if func_name not in model_output:
        return {"valid": False, "error": [f"Function name {func_name!r} not found in model output."],
                "error_type": "simple_function_checker:wrong_func_name"}
    model_params = model_output[func_name]
    for param in required_params:
        if param not in model_params:
            return {"valid": False, "error": [f"Missing required parameter: {param!r}."],
                    "error_type": "simple_function_checker:missing_required"}
    for param, raw_value in model_params.items():
        value = raw_value
        if param not in param_details or param not in possible_answer:
            return {"valid": False, "error": [f"Unexpected parameter: {param!r}."],
                    "error_type": "simple_function_checker:unexpected_param"}
        expected_type_description = param_details[param]["type"]
        expected_type_converted = PYTHON_TYPE_MAPPING[expected_type_description]
        nested_type_converted = None
        if expected_type_description in PYTHON_NESTED_TYPE_CHECK_LIST:
            nested_type_converted = PYTHON_TYPE_MAPPING[param_details[param]["items"]["type"]]
        if expected_type_description == "tuple" and type(value) is tuple:
            value = list(value)
        if expected_type_description == "float" and type(value) is int:
            value = float(value)  # Python's int-to-float promotion is allowed
        type_check_result = type_checker(param, value, possible_answer[param], expected_type_description,
                                         expected_type_converted, nested_type_converted)
        if not type_check_result["valid"]:
            return type_check_result
        if not type_check_result["is_variable"]:
            if expected_type_converted is dict:
                check = dict_checker(param, value, possible_answer[param])
            elif expected_type_converted is list and nested_type_converted is dict:
                check = list_dict_checker(param, value, possible_answer[param])
            elif expected_type_converted is str:
                check = string_checker(param, value, possible_answer[param])
            elif expected_type_converted is list:
                check = list_checker(param, value, possible_answer[param])
            else:
                check = None
            if check is not None:
                if not check["valid"]:
                    return check
                continue
        if value not in possible_answer[param]:
            return {"valid": False,
                    "error": [f"Invalid value for parameter {param!r}: {value!r}. "
                              f"Expected one of {possible_answer[param]}."],
                    "error_type": "value_error:others"}
    for param in possible_answer:
        if param not in model_params and "" not in possible_answer[param]:
            return {"valid": False, "error": [f"Optional parameter {param!r} not provided and not marked as optional."],
                    "error_type": "simple_function_checker:missing_optional"}
    return result


def multiple_function_checker(func_descriptions: list[dict[str, Any]], model_output: list[dict[str, Any]],
                              possible_answers: list[dict[str, Any]]) -> Result:
    if len(model_output) != len(possible_answers):
        return {"valid": False, "error": ["Wrong number of functions."],
                "error_type": "multiple_function_checker:wrong_count"}
    func_name_expected = next(iter(possible_answers[0]))
    func_description = find_description(func_descriptions, func_name_expected)
    assert func_description is not None, f"BFCL data: no description of {func_name_expected}"
    return simple_function_checker(func_description, model_output[0], possible_answers[0])
