"""update -r: JSON keys matched as runc's Go decoder matches struct fields."""

from kago.container.update import _go_keys


def test_struct_fields_match_case_insensitively():
    got = _go_keys({"CPU": {"Shares": 512, "CPUS": "0"}, "Memory": {"LIMIT": 1},
                    "BlockIO": {"WeightDevice": [{"Major": 8, "Minor": 0, "Weight": 10}]},
                    "Devices": [{"Allow": True, "Access": "rwm"}],
                    "HugepageLimits": [{"PageSize": "2MB", "Limit": 1}]})
    assert got == {"cpu": {"shares": 512, "cpus": "0"}, "memory": {"limit": 1},
                   "blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 10}]},
                   "devices": [{"allow": True, "access": "rwm"}],
                   "hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}


def test_map_keys_stay_as_written():
    got = _go_keys({"Unified": {"Memory.Max": "1"}, "RDMA": {"MLX5_0": {"HcaHandles": 2}}})
    assert got == {"unified": {"Memory.Max": "1"}, "rdma": {"MLX5_0": {"hcaHandles": 2}}}


def test_unknown_keys_and_odd_values_pass_through_for_the_validator():
    assert _go_keys({"bogus": 1, "cpu": 5, "memory": None}) == \
        {"bogus": 1, "cpu": 5, "memory": None}
