"""A content-aware scenario sends each photo to the model for its content: a photo with a face big
enough to the portrait scenario, the rest to the general one; the model used is in every result."""

from __future__ import annotations

import pytest
from conftest import DATA, SAMPLES
from matting.engine import Engine, OutputOptions, Scenario, file_sources
from matting.errors import ConfigError

ROUTED = Scenario(name="routed", route={"people": "portrait", "other": "default"})


@pytest.fixture(scope="module")
def routed(model_store):
    from matting.engine import RuntimeOptions

    return Engine(scenario=ROUTED, store=model_store, runtime=RuntimeOptions.from_env(providers="cpu"))


def test_people_and_the_rest_go_to_their_own_model(routed):
    photos = [
        SAMPLES / "astronaut.jpg",  # a portrait (BlazeFace 0.92)
        DATA / "portrait_tilted_8deg.jpg",  # another (0.95)
        DATA / "portrait_small_in_frame.jpg",  # a person further away, a less sure face (0.83): general
        SAMPLES / "coffee.jpg",  # a cup
        SAMPLES / "rocket.jpg",  # a rocket on its pad
    ]
    results = list(routed.run_batch(file_sources(photos, [p.name for p in photos]), OutputOptions.build("png")))
    assert all(r.ok for r in results), [r.error for r in results]
    assert [r.model for r in results] == ["modnet", "modnet", "u2netp", "u2netp", "u2netp"]
    assert all("route" in r.timings_ms for r in results)
    assert routed.model_label == "u2netp, people: modnet"


def test_the_route_is_part_of_the_result_cache_key(routed, engine):
    assert routed.model_sha256 != engine.model_sha256 and len(routed.model_sha256) == 64
    plain = Engine(
        scenario=Scenario(name="routed2", route={"people": "id_photo", "other": "default"}), store=engine.store
    )
    assert plain.model_sha256 != routed.model_sha256  # another people scenario: another key


def test_naming_a_model_turns_routing_off(model_store):
    one = Engine(model="u2netp", scenario=ROUTED, store=model_store)
    assert not one.routes and one.scenario.name == "default" and one.model_label == "u2netp"


def test_routes_must_name_plain_scenarios():
    with pytest.raises(ConfigError, match="route must name"):
        Scenario(name="bad", route={"people": "portrait"})
    with pytest.raises(ConfigError, match="route_min_score"):
        Scenario(name="bad", route={"people": "portrait", "other": "default"}, route_min_face=1.5)
