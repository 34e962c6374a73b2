// The features of an OGC API HTML page on a MapLibre map (country outlines from the API).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("features").textContent);
  const map = new maplibregl.Map({
    container: "map",
    style: {
      version: 8,
      sources: {
        countries: { type: "geojson", data: "/v1/areas/outlines.geojson?kind=country",
                     attribution: "Natural Earth" },
        features: { type: "geojson", data: data }
      },
      layers: [
        { id: "sea", type: "background", paint: { "background-color": "#b9d3e0" } },
        { id: "land", type: "fill", source: "countries", paint: { "fill-color": "#f2efe9" } },
        { id: "borders", type: "line", source: "countries",
          paint: { "line-color": "#8a8a8a", "line-width": 0.8 } },
        { id: "points", type: "circle", source: "features",
          paint: { "circle-radius": 5, "circle-color": "#c0392b",
                   "circle-stroke-color": "#fff", "circle-stroke-width": 1 } }
      ]
    },
    center: [45.39, 34.35],
    zoom: 4
  });
  const coords = (data.features || []).map(f => f.geometry && f.geometry.coordinates)
    .filter(Boolean);
  if (coords.length) {
    const bounds = coords.reduce((b, c) => b.extend(c),
                                 new maplibregl.LngLatBounds(coords[0], coords[0]));
    map.fitBounds(bounds, { padding: 40, maxZoom: 10, duration: 0 });
  }
  map.on("idle", () => { window.mapReady = true; });
})();
