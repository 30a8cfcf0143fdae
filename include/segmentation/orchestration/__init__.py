"""Thin Airflow adapters: the only modules of the package that import Airflow.

``assets`` and ``params`` are declarative and light (DAG files import them at parse time);
``connection`` turns Airflow connections into engines and credentials; ``tasks`` runs a pipeline
stage inside a task; ``alerts`` is the failure callback. Nothing else in the package imports Airflow,
so every stage runs and is tested without it.
"""
