"""`core.registry`: the argument contract derived from a job's signature, and what it refuses to
register. Each test uses its own `Registry()`; `@job` and `@cron` mark the function itself, so a test that
marks a function defines its own."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated

import pytest
from pydantic import Field, ValidationError

from core.context import JobContext
from core.registry import CronScheduleError, Registry, UnknownFunction, arguments_model, cron, every, job


async def resize_image(ctx: JobContext, url: str, width: Annotated[int, Field(gt=0)], quality: int = 80) -> str:
    """Resize an image.

    The second paragraph is kept too.
    """
    return url


async def untyped_job(ctx: JobContext, value) -> None:
    """A parameter without an annotation."""


def blocking_job(ctx: JobContext, value: int) -> None:
    """Not a coroutine function."""


async def star_job(ctx: JobContext, *values: int) -> None:
    """Positional varargs have no name in a JSON object."""


async def schedule_meeting(ctx: JobContext, at: datetime) -> None:
    """Takes a datetime, which travels as an ISO string."""


async def tick(ctx: JobContext) -> None:
    """A cron job."""


def test_arguments_model_has_required_and_optional_fields() -> None:
    model = arguments_model(resize_image)
    assert model.__name__ == "ResizeImageArguments"
    fields = model.model_fields
    assert list(fields) == ["url", "width", "quality"]
    assert fields["url"].is_required() and fields["width"].is_required()
    assert not fields["quality"].is_required() and fields["quality"].default == 80
    assert model.model_validate({"url": "u", "width": 10}).model_dump() == {"url": "u", "width": 10, "quality": 80}


def test_arguments_model_enforces_annotations() -> None:
    model = arguments_model(resize_image)
    with pytest.raises(ValidationError) as raised:
        model.model_validate({"url": "u", "width": 0, "quality": "high"})
    assert {error["loc"] for error in raised.value.errors()} == {("width",), ("quality",)}


def test_arguments_model_rejects_an_extra_field() -> None:
    with pytest.raises(ValidationError) as raised:
        arguments_model(resize_image).model_validate({"url": "u", "width": 1, "colour": "red"})
    [error] = raised.value.errors()
    assert error["loc"] == ("colour",)
    assert error["type"] == "extra_forbidden"


def test_arguments_model_requires_missing_fields() -> None:
    with pytest.raises(ValidationError) as raised:
        arguments_model(resize_image).model_validate({})
    assert {error["loc"] for error in raised.value.errors()} == {("url",), ("width",)}


def test_parameter_without_annotation_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="'value' needs a type annotation"):
        Registry().job(untyped_job)


def test_non_async_function_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="blocking_job must be an async def"):
        Registry().job(blocking_job)


def test_var_positional_parameter_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="plain keyword parameter"):
        Registry().job(star_job)


def test_duplicate_name_is_a_value_error() -> None:
    registry = Registry()
    registry.job(resize_image)

    async def resize_image_again(ctx: JobContext, url: str) -> str:
        return url

    resize_image_again.__name__ = "resize_image"
    with pytest.raises(ValueError, match="'resize_image' is already registered"):
        registry.job(resize_image_again)
    assert registry.get("resize_image").function is resize_image


def test_cron_name_clashing_with_a_job_is_a_value_error() -> None:
    registry = Registry()
    registry.job(tick)

    async def another_tick(ctx: JobContext) -> None:
        """Another function named tick."""

    another_tick.__name__ = "tick"
    with pytest.raises(ValueError, match="'tick' is already registered"):
        registry.cron(second=0)(another_tick)


def test_registering_the_same_function_twice_is_harmless() -> None:
    registry = Registry()
    registry.job(resize_image)
    registry.job(resize_image)
    assert list(registry.jobs) == ["resize_image"]


def test_job_decorator_records_name_description_and_options() -> None:
    registry = Registry()
    decorated = registry.job(timeout=12, max_tries=2, keep_result=60)(resize_image)
    assert decorated is resize_image
    spec = registry.get("resize_image")
    assert spec.name == "resize_image"
    assert spec.description == "Resize an image.\n\nThe second paragraph is kept too."
    assert (spec.options.timeout_s, spec.options.max_tries, spec.options.keep_result_s) == (12, 2, 60)
    assert Registry().job(resize_image) is resize_image  # bare `@job` form


def test_json_kwargs_are_validated_and_json_ready() -> None:
    registry = Registry()
    registry.job(schedule_meeting)
    spec = registry.get("schedule_meeting")
    assert spec.json_kwargs({"at": "2030-01-02T03:04:05Z"}) == {"at": "2030-01-02T03:04:05Z"}
    with pytest.raises(ValidationError):
        spec.json_kwargs({"at": "next tuesday"})


def test_unknown_function_is_a_lookup_error_naming_it() -> None:
    with pytest.raises(UnknownFunction, match="launch_rockets") as raised:
        Registry().get("launch_rockets")
    assert isinstance(raised.value, LookupError)


def test_cron_job_must_be_given_the_arguments_it_requires() -> None:
    registry = Registry()

    async def report(ctx: JobContext, region: str) -> None:
        """A cron job that needs an argument."""

    with pytest.raises(CronScheduleError, match=r"'report' of report: kwargs do not fit.*region: Field required"):
        registry.cron(second=0)(report)

    async def tick(ctx: JobContext) -> None:
        """A cron job no other test has marked."""

    registry.cron(second=every(15), run_at_startup=True)(tick)
    spec = registry.crons["tick"]
    assert spec.schedule["second"] == {0, 15, 30, 45}
    assert spec.run_at_startup is True
    assert spec.options.max_tries == 1
    assert "tick" not in registry.jobs


def test_a_cron_is_never_registered_as_a_plain_job() -> None:
    """Marks live on the function: one another registry (or a stacked `@job`) marked as a job must still not
    become a plain job when registered as a cron; refusing it is fine, dropping its schedule is not."""

    async def tick(ctx: JobContext) -> None:
        """Marked as a job elsewhere first."""

    Registry().job(tick)
    registry = Registry()
    with contextlib.suppress(TypeError, ValueError):
        registry.cron(second=0)(tick)
    assert "tick" not in registry.jobs

    @cron(second=0)
    @job
    async def both(ctx: JobContext) -> None:
        """Marked twice."""

    stacked = Registry()
    with contextlib.suppress(TypeError, ValueError):
        stacked.add(both)
    assert "both" not in stacked.jobs
