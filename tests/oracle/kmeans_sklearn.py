#!/usr/bin/env python3
"""scikit-learn's k-means on 1-D importance vectors, for the SqueezeAttention clustering check.

    python3 kmeans_sklearn.py IN.json OUT.json

IN.json: a list of lists of floats. OUT.json: for each list, {"labels": the labels
KMeans(n_clusters=3, n_init=10) gives (the official SqueezeAttention code calls
KMeans(n_clusters=3)), relabelled so that 1 is the cluster of lowest centre and 3 the highest;
"inertia": its within-cluster sum of squares}.
"""
import json
import sys

import numpy as np
from sklearn.cluster import KMeans


def main():
    vectors = json.load(open(sys.argv[1]))
    out = []
    for v in vectors:
        x = np.asarray(v, dtype=np.float64).reshape(-1, 1)
        km = KMeans(n_clusters=3, n_init=10, random_state=0).fit(x)
        order = np.argsort(km.cluster_centers_.ravel())
        rank = {int(c): i + 1 for i, c in enumerate(order)}
        out.append({"labels": [rank[int(l)] for l in km.labels_], "inertia": float(km.inertia_)})
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
