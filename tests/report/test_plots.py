from matplotlib.colors import to_hex

from optsearch.report.plots import series_style


def test_optimizers_past_the_tenth_still_get_a_style_of_their_own():
    styles = [series_style(k) for k in range(120)]
    assert len({(to_hex(s["color"]), s["marker"], s["linestyle"]) for s in styles}) == 120
    assert len({to_hex(s["color"]) for s in styles[:10]}) == 10  # the first ten differ in colour alone
