"""Reading traced programs in tests."""


def matmul_input_dtypes(jaxpr) -> set[str]:
    """Input dtypes of every conv / dot_general in ``jaxpr``, nested jaxprs included."""
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
            found.update(str(v.aval.dtype) for v in eqn.invars)
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found |= matmul_input_dtypes(inner)
    return found
