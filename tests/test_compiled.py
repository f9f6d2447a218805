"""The installed koekje is the compiled one (setup.py), and what mypyc would change is kept out of it."""

import importlib
import pkgutil

import msgspec

import koekje.analytics
import koekje.banner
import koekje.middleware
from koekje.middleware import page
from koekje.middleware.records import Hit, Incoming, Visit


def test_the_request_path_is_compiled() -> None:
    # Not so: no C compiler or Python headers when it was installed (`make compiler`).
    assert page.__file__ is not None and page.__file__.endswith(".so"), page.__file__


def test_no_struct_is_defined_in_a_compiled_module() -> None:
    # mypyc builds a msgspec Struct without its class options: frozen, gc=False and omit_defaults gone, so
    # other behaviour, other stored rows and a collection of the young objects per ~700 page views.
    compiled = []
    for package in (koekje.middleware, koekje.analytics, koekje.banner):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            if (module.__file__ or "").endswith(".py"):
                continue
            compiled.append(info.name)
            structs = [
                name
                for name, value in vars(module).items()
                if isinstance(value, type)
                and issubclass(value, msgspec.Struct)
                and value.__module__ == module.__name__
            ]
            assert not structs, f"{info.name} is compiled and defines {structs}"
    assert "koekje.middleware.capture" in compiled and "koekje.analytics.recorder" in compiled
    assert not Visit.__struct_config__.gc and Visit.__struct_config__.frozen
    assert not Incoming.__struct_config__.gc and not Hit.__struct_config__.gc
