"""Read YAML as kubectl does: numbers by YAML 1.2 rules, errors that name the file.

PyYAML implements YAML 1.1, whose float pattern needs a dot: ``learningRate: 2e-4`` comes back as the string
``"2e-4"`` and the spec is refused, while kubectl (sigs.k8s.io/yaml, go-yaml) reads it as the number 0.0002 and
the cluster accepts it. This loader resolves plain scalars with the YAML 1.2 core schema's float pattern
(``[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?``, plus ``.inf``/``.nan``); everything else is PyYAML's
safe loader. Errors carry the file name instead of ``<unicode string>``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

FLOAT_1_2 = re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.VERBOSE)


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats (integers stay integers: ``2`` is an int, ``2e-4`` a float)."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_1_2, list("-+.0123456789"))


class Yaml12Dumper(yaml.SafeDumper):
    """SafeDumper that also quotes the strings :class:`Yaml12Loader` would read as numbers (``0434421780``,
    ``1e12345678``: PyYAML's YAML 1.1 rules leave them bare), so what one writes the other reads back."""


Yaml12Dumper.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()}
Yaml12Dumper.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_1_2, list("-+.0123456789"))


def dump_yaml(data: Any, **options: Any) -> str:
    """``data`` as YAML that both YAML 1.1 readers and :func:`load_documents` read back unchanged."""
    return yaml.dump(data, Dumper=Yaml12Dumper, sort_keys=False, **options)


class YamlError(ValueError):
    """A file is not valid YAML; the message names the file, line and column."""


def load_documents(text: str, source: str) -> list[Any]:
    """Every non-empty YAML document of ``text``; ``source`` (a path, ``<stdin>``) names it in errors."""
    loader = Yaml12Loader(text)
    loader.name = source
    try:
        docs = []
        while loader.check_data():
            doc = loader.get_data()
            if doc is not None:
                docs.append(doc)
        return docs
    except yaml.YAMLError as err:
        raise YamlError(f"{source}: not valid YAML: {err}") from None
    finally:
        loader.dispose()
