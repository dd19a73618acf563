"""Declaring a program: decorators, stage order, node functions. No API needed."""

from __future__ import annotations

import pytest

from impetus import Impetus


class Pipeline(Impetus):
    @Impetus.node
    def square(i):
        return i * i

    @Impetus.process
    def zeta(self, ready, errors):
        pass

    @Impetus.startup
    def begin(self):
        pass

    @Impetus.process
    def alpha(self, ready, errors):
        pass

    @Impetus.process
    def middle(self, ready, errors):
        pass

    @Impetus.shutdown
    def end(self, ready, errors, progress):
        pass


def test_stages_in_declaration_order_not_alphabetical():
    assert Pipeline._stage_names == ("zeta", "alpha", "middle")
    assert Pipeline._startup_name == "begin"
    assert Pipeline._shutdown_name == "end"


def test_node_function_is_plain_callable():
    assert Pipeline.square(4) == 16
    assert Pipeline.__dict__["square"].__func__(5) == 25
    assert Pipeline.__dict__["square"].__func__._impetus_node is True


def test_subclass_keeps_base_order_and_appends_new_stages():
    class More(Pipeline):
        @Impetus.process
        def alpha(self, ready, errors):  # override keeps its position
            pass

        @Impetus.process
        def omega(self, ready, errors):
            pass

    assert More._stage_names == ("zeta", "alpha", "middle", "omega")
    assert Pipeline._stage_names == ("zeta", "alpha", "middle")


def test_two_startups_are_rejected():
    with pytest.raises(TypeError, match="startup"):

        class Bad(Impetus):
            @Impetus.startup
            def a(self):
                pass

            @Impetus.startup
            def b(self):
                pass


def test_stage_named_startup_is_rejected():
    with pytest.raises(TypeError):

        class Bad(Impetus):
            @Impetus.process
            def startup(self, ready, errors):
                pass
