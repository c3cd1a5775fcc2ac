from fast_dvla_ros.graph.markdown import main

if __name__ == "__main__":
    raise SystemExit(main())
