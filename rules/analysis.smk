# The analyses (monkeyflow.analysis): one rule per registered analysis, all running one script
# (workflow_scripts/analysis.py -> monkeyflow.analysis.run_analysis). Each rule reads what its
# analysis declares, writes its tables (results/summary/<table>.parquet, HTML renderings for
# `snakemake --report` in results/tables/) and its figure (results/figures/<figure>.png).
# Settings come from the config's `analysis:` section (defaults in schemas/config.schema.yaml);
# a rule's params hold only the settings its analysis uses, so changing another one does not
# rerun it. Report captions are report/<figure>.rst and report/<table>_table.rst. The helpers
# (analysis_runs, analysis_inputs, analysis_outputs, analysis_targets) are in common.smk.
for _analysis in map(ANALYSES.get, ANALYSES.names()):

    rule:
        name:
            _analysis.name
        input:
            **analysis_inputs(_analysis),
        output:
            **analysis_outputs(_analysis, figure=_analysis.figure_rule is None),
        params:
            analysis=_analysis.name,
            lineage=summary_lineage(),
            runs=analysis_runs(_analysis),
            settings={k: ANALYSIS[k] for k in _analysis.settings},
        log:
            f"logs/analysis/{_analysis.name}.log",
        conda:
            "../envs/monkeyflow.yaml"
        container:
            container_image("analysis")
        script:
            "../workflow_scripts/analysis.py"

    if _analysis.figure_rule:

        # The figure drawn from the written tables by a rule of its own.
        rule:
            name:
                _analysis.figure_rule
            input:
                **{t: summary_table(t) for t in _analysis.tables},
                **{t: summary_table(t) for t in _analysis.reads_tables},
            output:
                figure=analysis_figure(_analysis),
            params:
                analysis=_analysis.name,
                lineage=summary_lineage(),
                runs=analysis_runs(_analysis, kinds=()),
                settings={k: ANALYSIS[k] for k in _analysis.settings},
            log:
                f"logs/analysis/{_analysis.figure_rule}.log",
            conda:
                "../envs/monkeyflow.yaml"
            container:
                container_image("analysis")
            script:
                "../workflow_scripts/analysis.py"
