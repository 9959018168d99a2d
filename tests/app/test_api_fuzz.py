"""The whole OpenAPI surface under schemathesis, every check enabled, on a
small budget (the longer run is benchmarks/fuzz_api.py): no 500, no status
the document does not declare, no body that breaks its schema, and no NaN
or infinity in any JSON body."""

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app.api_fuzzing import case_strategy, check_response, fuzz_target, operations

# Cases per operation, positive and negative mixed; 19 operations.
EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return fuzz_target(Path(tmp_path_factory.mktemp("fuzz")))


@pytest.mark.parametrize(("method", "path"), operations())
def test_operation_conforms_to_the_openapi_document(
    api_schema: Any, method: str, path: str
) -> None:
    strategy = case_strategy(api_schema, method, path)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        check_response(data.draw(strategy))

    run()
